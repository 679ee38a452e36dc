"""The options of the ``%steps`` subcommands (``magic_arguments`` on plain
functions; ``name=`` is what usage lines and errors call them)."""

from __future__ import annotations

from IPython.core.magic_arguments import argument, magic_arguments

from nbsteps.ipython.guards import checked
from nbsteps.model.step import check_workers


@magic_arguments(name="steps run")
@argument("targets", nargs="*", help="steps to run (with what they need); default: all")
@argument(
    "--workers",
    type=checked(check_workers),
    default=None,
    help="parallel workers, >= 1 (default: widest level, max 8; on dask: steps in flight, max 256)",
)
@argument(
    "--backend", choices=["threads", "dask"], default=None, help="default: threads (or NBSTEPS_BACKEND)"
)
@argument("--address", default=None, help="dask scheduler address (or use a Client in the session)")
@argument("--fail-fast", action="store_true", help="stop scheduling at the first failure")
@argument("--rollback", action="store_true", help="undo this run's completed steps when a step fails")
@argument("--force", nargs="+", default=[], metavar="STEP", help="run these steps even if up to date")
@argument("--force-all", action="store_true", help="run every step even if up to date")
@argument("--yes", action="store_true", help="approve every --confirm step")
@argument("--allow-failures", action="store_true", help="report failures without raising")
def run_args(line):
    """%steps run"""


@magic_arguments(name="steps plan")
@argument("targets", nargs="*")
@argument("--force", nargs="+", default=[], metavar="STEP")
@argument("--force-all", action="store_true")
def plan_args(line):
    """%steps plan"""


@magic_arguments(name="steps graph")
@argument("--format", choices=["svg", "png", "dot"], default=None)
@argument("--output", default=None, help="file to write (format from --format or the suffix)")
def graph_args(line):
    """%steps graph"""


@magic_arguments(name="steps store")
@argument("spec", nargs="?", default=None, help="memory, or a directory")
@argument(
    "--max-size",
    default=None,
    help="size limit of a directory store (500MB, 2GB; none: no limit); "
    "past it the least recently used checkpoints are removed (default 10 GB)",
)
def store_args(line):
    """%steps store"""


#: the subcommands that take options, and their parsers
OPTION_PARSERS = {"run": run_args, "plan": plan_args, "graph": graph_args, "store": store_args}

SUBCOMMANDS = {
    "plan": "preview: order, levels, what runs and why, critical path, estimated time",
    "run": "run the plan (or TARGETs and what they need)",
    "show": "the plan's picture: progress, graph and results table (refreshed by later runs)",
    "status": "text summary of every step",
    "results": "the results table (pandas DataFrame)",
    "graph": "the dependency graph (graphviz)",
    "export": "write the results table: .csv .json .parquet .html",
    "reset": "drop checkpoints of STEPs (all if none) and their downstream",
    "remove": "unregister a step",
    "undo": "run a step's %%undo code and mark it and its downstream not completed",
    "mode": "interactive (a %%step cell runs at once) or plan (it only registers)",
    "auto": "every following code cell is a step, no %%step line needed (%steps auto off: back)",
    "store": "where checkpoints live: memory or a directory [--max-size 2GB]",
    "load": "read the values restored from a directory store that no cell has used yet",
    "why": "what a step reads and writes (inferred, observed or hinted by type) and the files it read",
}
