"""The ``runlog`` command line."""

import click


@click.group()
def main() -> None:
    """runlog: an event-sourced run log for ML training."""
