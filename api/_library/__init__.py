"""The training library: ``init``, ``Run`` and what keeps a run truthful.

``_init.py`` starts or continues a run (resume, rewind, the auto-resume file) and
``_remote.py`` does it against a ``runlog serve`` URL; ``Run`` is built in layers
(``_run_buffer.py`` step rules and buffer, ``_run_writer.py`` the writer and fencing,
``_run_end.py`` finishing and runs left open, ``_run.py`` the public class);
``_exit.py``, ``_loop.py`` and ``_preemption.py`` are the exit code, the shared loop
thread and the preemption helper; ``_settings.py``, ``_ids.py``, ``_summary.py``,
``_config.py`` and ``_rewind.py`` are settings, run ids, the summary, the config and
the rewind; ``_wandb.py`` is the W&B module-level API behind ``api.sync``.
"""
