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
    from nbsteps.run.summary import RunSummary, store_where

    plan = _kernel_plan()
    plan.store.flush()  # the run's checkpoints are durable (or said not to be) before it is reported
    out = {"steps": {}, "wrote": [], "errors": [], "summary": "", "ok": True, "n": len(plan.steps)}
    if results:
        try:
            from nbsteps.views.table import export

            plan.refresh_stale()  # as Plan.export does
            out["wrote"].append(export(plan.context, results, session=True))
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
    # one kernel session is one `nbsteps run`: a step kept counts as how its values came (executed/restored)
    summary = RunSummary(
        steps=names,
        records=plan.records,
        interrupted=bool(interrupted),
        resume_hint=hint,
        store=store_where(plan.context),
        session=True,
    )
    summary.optional_steps = frozenset(s for s in names if plan.steps[s].optional)
    for s in names:
        r = plan.records[s]
        out["steps"][s] = {
            "status": str(r.status),
            "origin": r.origin_in_session,
            "cached": bool(r.cached),
            "error": r.error_text,
            "code": plan.steps[s].static_digest,
        }
    out["ok"] = all(
        plan.records[s].status == COMPLETED or (plan.records[s].status == FAILED and plan.steps[s].optional)
        for s in names
    )
    out["summary"] = summary.text if names else "the notebook registered no steps."
    _report(out)


def kernel_outputs(names) -> None:
    """(kernel side) Each step's outputs as Run All would have left them under
    its cell (nbformat output dicts): what it printed, displayed and returned,
    its error; None for a step that neither completed nor failed."""
    from IPython import get_ipython

    from nbsteps.model.status import COMPLETED, FAILED
    from nbsteps.run.attempt.capture import last_by_display_id

    ip = get_ipython()
    plan = _kernel_plan()
    out = {}
    # a display with a display id shows the last display or update of that id, in notebook order
    wanted = set(names)
    latest = last_by_display_id(
        plan.records[n].output for n in plan.steps if n in wanted and n in plan.records
    )
    for name in names:
        rec = plan.records.get(name)
        if rec is None or rec.status not in (COMPLETED, FAILED):
            out[name] = None
            continue
        try:
            out[name] = _run_all_outputs(ip, rec, rec.status == FAILED, latest)
        except Exception:  # a value that cannot be shown: the cell keeps its status line
            out[name] = None
    _report(out)


def _run_all_outputs(ip, rec, failed: bool, latest: "dict | None" = None) -> list:
    outputs: list = []
    shown = False
    for kind, payload in rec.output or ():
        if kind == "display" and latest and isinstance(payload, dict) and payload.get("display_id") in latest:
            payload = latest[payload["display_id"]]
        if kind in ("stdout", "stderr"):
            name = kind
            if outputs and outputs[-1].get("output_type") == "stream" and outputs[-1]["name"] == name:
                outputs[-1]["text"] += str(payload)
            else:
                outputs.append({"output_type": "stream", "name": name, "text": str(payload)})
        elif kind in ("display", "result") and isinstance(payload, dict):
            shown = shown or kind == "result"
            outputs.append(_bundle_output(kind, payload.get("data"), payload.get("metadata")))
    if not failed and not shown and rec.has_result and rec.result is not None:
        data, metadata = ip.display_formatter.format(rec.result)
        outputs.append(_bundle_output("result", data, metadata))
    if failed:
        err = rec.error
        outputs.append(
            {
                "output_type": "error",
                "ename": type(err).__name__ if err is not None else "Error",
                "evalue": str(err) if err is not None else rec.error_text,
                "traceback": (rec.traceback or rec.error_text or "").rstrip("\n").splitlines(),
            }
        )
    return outputs


def _bundle_output(kind: str, data, metadata) -> dict:
    out = {"data": dict(data or {}), "metadata": dict(metadata or {})}
    if kind == "result":
        return {"output_type": "execute_result", "execution_count": None, **out}
    return {"output_type": "display_data", **out}
