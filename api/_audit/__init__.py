"""Auditing the log: queries, checks, export and import, explanations.

``_queries.py`` answers the reading commands (runs, a run's timeline, sweeps, state as
of a past position); ``_verify.py`` checks the chain and the read models; ``_transfer.py``
exports and imports the log as JSON Lines; ``_explain.py`` says why a run was queued.
"""
