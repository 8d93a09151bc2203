"""``python -m api`` runs the ``runlog`` command line."""

from ._cli import main

if __name__ == "__main__":  # worker processes re-import the main module
    main()
