#!/usr/bin/env python
"""Regenerate docs/widget.png, the README's picture of what a run leaves in its
cell (progress, graph, results table: the static picture that replaces the live
widget when the run ends), from a real browser: JupyterLab in Debian's chromium,
driven by the harness in tests/browser.py.

It stages notebooks/03-partial-completion-and-recovery.ipynb up to its first
``%steps run`` (a run that ends with a failed step, a blocked branch, a retried
step, an optional step that failed and an independent branch that completed),
runs it with Run All, waits until the run's cell shows its final picture and
takes a picture of it.

    python scripts/screenshot.py [--output docs/widget.png] [--full]

Needs jupyterlab, playwright (the Python package; the browser is
/usr/bin/chromium, or NBSTEPS_CHROMIUM) and graphviz's ``dot``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium_available, jupyterlab_server, stage_notebook  # noqa: E402

SOURCE = ROOT / "notebooks" / "03-partial-completion-and-recovery.ipynb"
STOP_AT = "%steps run --allow-failures"
# The picture's header says "k/N completed finished in ..." once the run is over.
FINISHED_TEXT = "finished in"


def staged_copy(dest_dir: Path) -> Path:
    nb = nbformat.read(SOURCE, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.source.strip() == STOP_AT:
            nb.cells = nb.cells[: i + 1]
            break
    else:
        raise SystemExit(f"{SOURCE.name} has no cell {STOP_AT!r}; update scripts/screenshot.py")
    return stage_notebook(nb, dest_dir, name="widget-demo.ipynb")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "docs" / "widget.png"))
    parser.add_argument("--full", action="store_true", help="the whole page, not only the widget")
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args(argv)
    if not chromium_available():
        print("screenshot: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    out = Path(args.output)
    with tempfile.TemporaryDirectory(prefix="nbsteps-shot-") as tmp:
        nb_path = staged_copy(Path(tmp))
        with jupyterlab_server(tmp, viewport=(1600, 1500)) as lab:
            page = lab.open_and_run_all(nb_path.name, timeout=args.timeout)
            cell = page.locator(".jp-NotebookPanel .jp-CodeCell").last
            widget = cell.locator(".nbsteps-view").first
            widget.wait_for(state="visible", timeout=30_000)
            widget.locator(".nbsteps-label", has_text=FINISHED_TEXT).first.wait_for(timeout=30_000)
            # the graph is an <img>/<svg> drawn after the header: wait for it to be laid out
            page.wait_for_function(
                "(el) => Array.from(el.querySelectorAll('img, svg')).some("
                "  (g) => g.getBoundingClientRect().height > 50)",
                arg=widget.element_handle(),
                timeout=30_000,
            )
            page.wait_for_timeout(500)
            widget.scroll_into_view_if_needed()
            if args.full:
                lab.screenshot(out)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                widget.screenshot(path=str(out))
    print(f"screenshot: wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
