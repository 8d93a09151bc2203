"""Projections: pure folds from runlog events to run and sweep state.

They arrive with the projections issue; the package exists so the layout is fixed.
"""

__all__: list[str] = []
