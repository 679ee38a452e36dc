"""One attempt of one step, wherever it runs (a worker thread, the kernel's
main thread, a dask worker): what it is given and what it gives back.

``task`` (a :class:`~nbsteps.run.attempt.task.Task` and :func:`run_task`: the
step's code in a private namespace, its outcome), ``inputs`` (what the attempt
is given: upstream outputs, the namespace, private copies of what it changes),
``array_views`` (arrays viewing the memory of one it changes, copied with it),
``notebook_functions`` (functions defined in the notebook see the names the
step's position implies), ``capture`` (what the step prints and displays, its
own), ``figures`` (its own pyplot figures) and ``retry`` (which failures are
retried, after how long). Nothing here knows the plan's graph or records
beyond what ``inputs`` reads from the run context.
"""
