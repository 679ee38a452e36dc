"""The model layer: what a plan *is*, with no execution and no I/O.

``analysis`` (what a cell reads, writes and changes), ``fingerprint`` (digests
of code and values), ``step`` (a step and its options), ``status`` (the one
``Status`` enum), ``record`` (what happened to a step), ``checkpoint`` (a
completed step's saved outputs), ``dependencies`` (the resolved graph) and
``graphs`` (levels, longest paths). Imports only ``nbsteps.errors`` and the
standard library.
"""
