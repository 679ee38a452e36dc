"""The run layer: executing a plan, emitting events.

``task`` (one attempt of a step in its own namespace), ``retry`` (the retry
policy), ``staleness`` (is a step up to date, and why not), ``executor`` (the
scheduling loop), ``events`` (what listeners receive), ``summary`` (what a run
did), ``preview`` (what a run would do) and ``undo`` (compensation). Never
imports IPython, widgets, a store or a backend implementation: the plan hands
those in.
"""
