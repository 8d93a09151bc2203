"""Projections: pure folds from runlog events to run and sweep state (arriving with the projections issue)."""

__all__: list[str] = []
