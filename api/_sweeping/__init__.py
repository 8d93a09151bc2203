"""Sweeps and agents: configs, search, the run queue.

``_sweep_config.py`` and ``_sweep_params.py`` parse and check a sweep config;
``_bayes.py`` and ``_hyperband.py`` are the bayes search and Hyperband early stopping;
``_command.py`` fills in a run's command macros; ``_sweeps.py`` creates and controls
sweeps and hands out their runs (claims, the queue of preempted runs, the watchdog);
``_agent.py`` runs them; ``_stop.py`` asks one run to stop; ``_sweep_path.py`` reads
sweep ids in W&B's ``entity/project/id`` form.
"""
