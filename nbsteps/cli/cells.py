"""The steps a notebook's cells make, read without a kernel (``nbsteps status``,
``nbsteps convert``): ``%%step`` cells, or, in a notebook without any, every
plain code cell (zero edits, named as :mod:`nbsteps.ipython.auto` says).
"""

from __future__ import annotations

from dataclasses import dataclass

from nbsteps.ipython.auto import is_marked_step, plain_headers


@dataclass
class CellStep:
    index: int  # of the cell in the notebook
    header: str  # what follows %%step: NAME [options]
    body: str  # the source the step registers (the cell without its %%step line)

    @property
    def name(self) -> str:
        return self.header.split()[0] if self.header.split() else ""


def source_of(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def notebook_steps(cells) -> tuple[list[CellStep], bool, bool]:
    """(the steps in notebook order, zero edits?, named from cell ids?)."""
    marked = []
    for i, cell in enumerate(cells):
        source = source_of(cell)
        if cell.get("cell_type") == "code" and is_marked_step(source):
            first, _, body = source.lstrip().partition("\n")
            marked.append(CellStep(i, first[len("%%step") :].strip(), body))
    if marked:
        return marked, False, True
    headers, with_ids = plain_headers(cells)
    return [CellStep(i, h, source_of(cells[i])) for i, h in headers.items()], True, with_ids


def python_source(body: str) -> str:
    """The body as the ``%%step`` magic registers it (``magics._python_source``),
    with IPython's transformer of a fresh shell."""
    from nbsteps.ipython.magics import _IPYTHON_SYNTAX

    if not body.strip():
        return "\npass\n"
    if _IPYTHON_SYNTAX.search(body):
        from IPython.core.inputtransformer2 import TransformerManager

        return "\n" + TransformerManager().transform_cell(body)
    return "\n" + body


def step_options(header: str) -> tuple[str, dict]:
    """(name, ``Plan.add_cell`` options) of a ``%%step`` line, parsed as the magic parses it."""
    from nbsteps.ipython.magics import StepMagics, _parse_step_line, _unquote

    args = _parse_step_line(StepMagics.step, header)
    return args.name, {
        "after": args.after,
        "retry": args.retry,
        "retry_delay": args.retry_delay,
        "retry_on": args.retry_on,
        "timeout": args.timeout,
        "optional": args.optional,
        "confirm": _unquote(args.confirm),
        "cache": not args.no_cache,
    }
