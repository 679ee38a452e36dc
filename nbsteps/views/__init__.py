"""The views: listeners and pictures of a plan's run context, for any frontend.

``text`` (progress lines and the summary), ``table`` (the results DataFrame and
its exports), ``graph`` (the graphviz dependency graph), ``live`` (the
ipywidgets live view), ``timeline`` (the run's Gantt strip), ``step_log`` (a
step's log, shown when a step is clicked), ``clickable`` (the anywidget that
tells which step was clicked), ``static`` (the picture that lasts). They receive
the run context (:mod:`nbsteps.run.context`: records and graph) and events, read
them and never change them (the facade refreshes stale flags before they draw);
they never import the Plan facade or a frontend.
"""
