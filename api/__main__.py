"""``python -m api`` runs the ``runlog`` command line."""

from ._cli import main

main()
