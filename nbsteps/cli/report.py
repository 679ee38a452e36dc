"""The kernel side of ``nbsteps run``: what the command line asks the kernel.

The answers travel through the Jupyter protocol, not stdout: each is a
``display_data`` message with its own MIME type (:data:`REPORT_MIME`), which
the command line reads from the hidden cell's outputs
(:func:`nbsteps.cli.driver.read_report`).
"""

from __future__ import annotations

import os

REPORT_MIME = "application/vnd.nbsteps.cli.report+json"


def _report(payload: dict) -> None:
    from IPython.display import display

    display({REPORT_MIME: payload}, raw=True)


def _kernel_plan():
    """The plan to report: the session's, else the only Plan in the user namespace."""
    from nbsteps.ipython import session
    from nbsteps.plan import Plan

    plan = session.current()
    if plan.steps:
        return plan
    found = [
        v
        for k, v in list(plan.namespace.items())
        if isinstance(v, Plan) and v.steps and not k.startswith("_")
    ]
    unique = list({id(p): p for p in found}.values())
    return unique[0] if len(unique) == 1 else plan


def kernel_pending() -> None:
    """(kernel side) Print which registered steps never ran, and whether the magics are loaded."""
    plan = _kernel_plan()
    from IPython import get_ipython

    ip = get_ipython()
    magics = bool(ip and "steps" in ip.magics_manager.magics.get("line", {}))
    from nbsteps.ipython import session

    pending = (
        [s for s in plan.order() if plan.records[s].status == "pending"] if plan is session.current() else []
    )
    _report({"pending": pending, "magics": magics})


def kernel_collect(
    results=None, graph=None, graph_format=None, hint="nbsteps run", interrupted=False
) -> None:
    """(kernel side) Export the results table and the graph, then print the
    state of every step as one JSON line for the command line."""
    from nbsteps.model.status import COMPLETED, FAILED
    from nbsteps.run.summary import RunSummary

    plan = _kernel_plan()
    out = {"steps": {}, "wrote": [], "errors": [], "summary": "", "ok": True, "n": len(plan.steps)}
    if results:
        try:
            out["wrote"].append(plan.export(results))
        except Exception as exc:
            out["errors"].append(f"could not write the results to {results}: {type(exc).__name__}: {exc}")
    if graph:
        try:
            from nbsteps.views.graph_command import graph_command

            plan.refresh_stale()
            graph_command(plan.context, graph_format, graph)
            if not os.path.exists(graph):
                raise RuntimeError("no file was written")
            out["wrote"].append(graph)
        except Exception as exc:
            out["errors"].append(f"could not write the graph to {graph}: {type(exc).__name__}: {exc}")
    names = plan.order()
    summary = RunSummary(steps=names, records=plan.records, interrupted=bool(interrupted), resume_hint=hint)
    summary.optional_steps = frozenset(s for s in names if plan.steps[s].optional)
    for s in names:
        r = plan.records[s]
        out["steps"][s] = {"status": str(r.status), "cached": bool(r.cached), "error": r.error_text}
    out["ok"] = all(
        plan.records[s].status == COMPLETED or (plan.records[s].status == FAILED and plan.steps[s].optional)
        for s in names
    )
    out["summary"] = summary.text if names else "the notebook registered no steps."
    _report(out)
