"""The views: listeners and pictures of a plan, for any frontend.

``text`` (progress lines and the summary), ``table`` (the results DataFrame and
its exports), ``graph`` (the graphviz dependency graph), ``live`` (the
ipywidgets live view). They read plans and records and receive events; they
never import the Plan facade or a frontend.
"""
