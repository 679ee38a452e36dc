"""The command-line frontend: ``nbsteps run NOTEBOOK.ipynb``.

``main`` (arguments, checks, exit status), ``driver`` (runs the notebook in a
real kernel through nbclient) and ``report`` (the kernel side: what the plan
did, sent back as a display with its own MIME type).
"""

from nbsteps.cli.main import main

__all__ = ["main"]
