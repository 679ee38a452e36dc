"""Deciding what a run does before and while it does it.

``selection`` (the graph of a run's steps, the default number of workers),
``staleness`` (a step's fingerprint now, why it must run, the stale flags),
``validity`` (which completed steps are known to be up to date, so one cell's
run does not re-check the notebook above it), ``replay`` (up-to-date steps run
again because their effect is on shared process state) and ``preview`` (what a
run would do and why: ``%steps plan``). The words are defined once, in
:mod:`nbsteps.model.status`.
"""
