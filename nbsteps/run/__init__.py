"""The run layer: executing a plan's steps, emitting events.

Everything here receives the :class:`~nbsteps.run.context.RunContext` the
Plan facade builds (``context``), never the Plan. ``executor`` (the scheduling
loop: which step is ready, started, retried, settled), ``attempt/`` (one
attempt of one step wherever it runs), ``decide/`` (is a step up to date, what
a run will do, what to replay), ``events`` (what listeners receive),
``summary`` (what a run did), ``publishing`` and ``deferred`` (outputs into
the namespace, restored values read on first use), ``recovery`` (a checkpoint
lost mid-run recomputed in that run), ``fusion`` (linear chains sent to dask
as one task), ``upstream_caches`` (caches a step leaves on the values above
it), ``confirmation``, ``undo`` and ``registration``. A step's statuses and
transitions are defined in :mod:`nbsteps.model.status`. Never imports IPython,
widgets, a store or a backend implementation: the facade hands those in.
"""
