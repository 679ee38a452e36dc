"""The IPython/Jupyter frontend: ``%%step``, ``%%undo`` and ``%steps``.

``session`` (the notebook's plan), ``magics`` (thin: parse, call the Plan,
show), ``display`` (which listeners a notebook run gets).
"""
