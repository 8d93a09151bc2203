"""``python -m api`` runs the ``runlog`` command line."""

# An absolute import: worker processes (verify's) run this file again as a plain
# script, where a relative import has no package to be relative to.
from api._cli import main

if __name__ == "__main__":  # worker processes re-import the main module
    main()
