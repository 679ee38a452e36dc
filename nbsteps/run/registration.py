"""What to tell the user about a step right after registering it."""

from __future__ import annotations

import builtins
import difflib


def registration_warnings(ctx, step) -> list[str]:
    """Names *step* reads that nothing defines (with a "did you mean"), and
    what the analysis could not see (star imports, names inside exec/eval strings)."""
    name = step.name
    out = [f"step {name!r}: {w}" for w in getattr(step.analysis, "warnings", ()) or ()]
    if step.analysis is None:
        return out
    deps = ctx.deps
    sources = deps.sources.get(name, {})
    missing = [
        n
        for n in sorted(step.inputs)
        if n not in sources and n not in ctx.namespace and not hasattr(builtins, n)
    ]
    if missing:
        # the steps above whose code may bind names unseen (globals(), exec, a magic): it runs after them
        dynamic = [d for d in deps.deps.get(name, ()) if d in deps.dynamic] if deps.dynamic else ()
        if dynamic:
            return out + [
                f"step {name!r} reads {', '.join(map(repr, missing))}, which no step above binds where "
                f"nbsteps can see it: it runs after {', '.join(dynamic)}, whose code may bind names "
                "when it runs"
            ]
        known = set(ctx.namespace) | set(deps.writers) | set(dir(builtins))
        for n in missing:
            close = difflib.get_close_matches(n, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(
                f"step {name!r} reads {n!r}, which no step above, no cell run so far and no "
                f"builtin defines{hint}"
            )
    return out
