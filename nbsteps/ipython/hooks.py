"""What ``%load_ext nbsteps`` hooks into IPython besides the magics:

- displays made inside a running step (``display()``, ``plt.show()`` with the
  inline backend, ``clear_output()``) go to that step's capture
  (:mod:`nbsteps.run.attempt.capture`), so they land in the step's own cell; widgets
  (a live progress bar) are shown where the run is, as they are live;
- tab completion: ``%steps`` subcommands, step names where a step is expected,
  and ``%%step --after`` step names.
"""

from __future__ import annotations

import shlex

from nbsteps.run.attempt import capture

#: subcommands followed by step names, and the options that take step names
_TAKE_STEPS = {"run", "plan", "reset", "remove", "undo"}
_STEP_OPTIONS = {"--force", "--after"}
_OPTIONS = {
    "run": [
        "--workers",
        "--backend",
        "--address",
        "--fail-fast",
        "--rollback",
        "--force",
        "--force-all",
        "--yes",
        "--allow-failures",
    ],
    "plan": ["--force", "--force-all"],
    "graph": ["--format", "--output"],
    "mode": ["interactive", "plan"],
    "auto": ["off"],
    "store": ["memory", ".nbsteps"],
}
_VALUES = {"--backend": ["threads", "dask"], "--format": ["svg", "png", "dot"]}
_WIDGET = "application/vnd.jupyter.widget-view+json"


def route_displays(ip) -> None:
    """Displays published while a step runs (in its thread) go to its capture."""
    pub = getattr(ip, "display_pub", None)
    if pub is None or getattr(pub, "_nbsteps_routed", False):
        return
    publish, clear = pub.publish, pub.clear_output

    def routed_publish(data, metadata=None, *args, **kwargs):
        cap = capture.active()
        if cap is None or _WIDGET in (
            data or {}
        ):  # a live widget (a progress bar) stays live, where the run is
            return publish(data, metadata, *args, **kwargs)
        transient = kwargs.get("transient") or {}
        cap.display(data, metadata, transient.get("display_id"), bool(kwargs.get("update")))
        return None

    def routed_clear(*args, **kwargs):
        cap = capture.active()
        if cap is None:
            return clear(*args, **kwargs)
        cap.clear()
        return None

    pub.publish, pub.clear_output = routed_publish, routed_clear
    pub._nbsteps_routed = True


def step_names() -> list[str]:
    from nbsteps.ipython import session

    try:
        return list(session.current().steps)
    except Exception:  # pragma: no cover - completion must never raise
        return []


def complete_steps(line: str, subcommands) -> list[str]:
    """Completions for the word being typed at the end of a ``%steps`` line."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if line.endswith((" ", "\t")):
        words.append("")
    words = words[1:]  # drop "%steps"
    current = words[-1] if words else ""
    if len(words) <= 1:
        return [c for c in subcommands if c.startswith(current)]
    cmd, before = words[0], words[-2]
    if before in _VALUES:
        return [v for v in _VALUES[before] if v.startswith(current)]
    options = [o for o in _OPTIONS.get(cmd, []) if o.startswith(current)]
    if (
        cmd in _TAKE_STEPS
        or before in _STEP_OPTIONS
        or (current and not current.startswith("-") and cmd in ("run", "plan"))
    ):
        names = [n for n in step_names() if n.startswith(current) and n not in words[1:-1]]
        return names + (options if current.startswith("-") or not names else [])
    return options


def complete_step_cell(line: str) -> list[str]:
    """``%%step NAME --after <TAB>``: step names; after other options: options."""
    words = line.split()
    if line.endswith((" ", "\t")):
        words.append("")
    current = words[-1] if words else ""
    if len(words) >= 3 and "--after" in words[2:-1]:
        return [n for n in step_names() if n.startswith(current)]
    if current.startswith("-"):
        return [
            o
            for o in (
                "--after",
                "--retry",
                "--retry-delay",
                "--retry-on",
                "--timeout",
                "--optional",
                "--confirm",
                "--no-cache",
                "--define",
            )
            if o.startswith(current)
        ]
    return []


def install(ip, subcommands) -> None:
    route_displays(ip)

    def steps_completer(self, event):
        return complete_steps(event.line, subcommands)

    def step_completer(self, event):
        return complete_step_cell(event.line)

    try:
        ip.set_hook("complete_command", steps_completer, str_key="%steps")
        ip.set_hook("complete_command", step_completer, str_key="%%step")
    except Exception:  # pragma: no cover - an IPython without custom completers
        pass
