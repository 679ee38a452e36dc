"""``python -m nbsteps``: the same as the ``nbsteps`` command."""

import sys

from nbsteps.cli import main

if __name__ == "__main__":
    sys.exit(main())
