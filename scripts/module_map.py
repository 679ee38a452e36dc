"""The module map of docs/architecture.md: every module of the package with the first
sentence of its docstring, by folder, drawn from the code.

    python scripts/module_map.py          # print the section
    python scripts/module_map.py --write  # replace it in docs/architecture.md

``tests/test_doc_references.py`` fails when the section in the document is not the one
this script draws (a module added, moved or redescribed without the map following).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nbsteps"
DOC = ROOT / "docs" / "architecture.md"
START = "<!-- module-map: drawn by scripts/module_map.py; do not edit by hand -->"
END = "<!-- module-map end -->"

# Folders in layer order, top to bottom (docs/architecture.md's table).
FOLDERS = ["ipython", "cli", ".", "views", "stores", "backends", "run", "run/decide", "run/attempt", "model"]
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc):`~?([^`]+)`")
SENTENCE_END = re.compile(r"(?<![ .][a-z])(?<!e\.g)(?<!i\.e)\.(?=\s|$)")


def first_sentence(doc: str) -> str:
    """The docstring's first paragraph up to its first full stop, RST roles made plain."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    paragraph = ROLE.sub(lambda m: "``" + m.group(1).rsplit(".", 1)[-1] + "``", paragraph)
    paragraph = paragraph.replace("``", "`")
    end = SENTENCE_END.search(paragraph)
    sentence = paragraph[: end.start() + 1] if end else paragraph
    return sentence[:-1] + "." if sentence.endswith(":") else sentence


def modules() -> dict[str, list[tuple[str, str]]]:
    by_folder: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        folder = rel.parent.as_posix()
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        by_folder.setdefault(folder, []).append((rel.as_posix(), first_sentence(doc)))
    return by_folder


def section() -> str:
    by_folder = modules()
    order = FOLDERS + sorted(set(by_folder) - set(FOLDERS))
    lines = [START, ""]
    for folder in order:
        if folder not in by_folder:
            continue
        title = "the package's root" if folder == "." else f"`nbsteps/{folder}/`"
        lines += [f"**{title}**", ""]
        lines += [f"- `{rel}`: {text or '(no docstring)'}" for rel, text in by_folder[folder]]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def current_in_doc() -> str | None:
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return None
    return START + text.split(START, 1)[1].split(END, 1)[0] + END


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the section in docs/architecture.md")
    args = parser.parse_args(argv)
    drawn = section()
    if not args.write:
        print(drawn)
        return 0
    old = current_in_doc()
    if old is None:
        sys.exit(f"{DOC}: no module map section (the line {START!r}) to replace")
    sys.path.insert(0, str(ROOT))
    from nbsteps.files import atomic_write

    new = DOC.read_text(encoding="utf-8").replace(old, drawn)
    with atomic_write(DOC, "w") as out:
        out.write(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
