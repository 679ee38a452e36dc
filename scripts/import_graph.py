"""Draw nbsteps' import picture from the code: one box per module, grouped by
layer (folder), one arrow per import between nbsteps modules (``TYPE_CHECKING``
imports included, dashed). Run it after moving code:

    .venv/bin/python scripts/import_graph.py            # writes docs/imports.svg (folders) and
                                                        # docs/imports-modules.svg (every module)
    .venv/bin/python scripts/import_graph.py --check    # exit 1 when an import points up a layer

The layers, top to bottom, are the ones ``pyproject.toml`` gives import-linter.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nbsteps"

#: layer of a module: the first entry whose prefix matches (lower index = higher layer)
LAYERS = [
    ("frontends", ("nbsteps.cli", "nbsteps.ipython", "nbsteps.__main__", "nbsteps.__init__")),
    ("facade", ("nbsteps.plan",)),
    ("views, stores, backends", ("nbsteps.views", "nbsteps.stores", "nbsteps.backends")),
    ("run", ("nbsteps.run",)),
    ("model", ("nbsteps.model",)),
    ("foundations", ("nbsteps.config", "nbsteps.formatting", "nbsteps.interrupts", "nbsteps.files")),
    ("errors", ("nbsteps.errors",)),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    for i, (_label, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return len(LAYERS)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported nbsteps module, under TYPE_CHECKING) for every import in *path*."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.body:
                    visit_one(sub, True)
                for sub in child.orelse:
                    visit_one(sub, typing_only)
            else:
                visit_one(child, typing_only)

    def visit_one(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((a.name, typing_only) for a in node.names if a.name.startswith("nbsteps"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.startswith("nbsteps"):
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    found.append((sub if _is_module(sub) else base, typing_only))
        else:
            visit(node, typing_only)

    visit(tree, False)
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def collect() -> tuple[list[str], set[tuple[str, str, bool]]]:
    modules = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))
    edges = set()
    for p in PACKAGE.rglob("*.py"):
        me = module_name(p)
        for target, typing_only in imports(p):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target != me and target in modules:
                edges.add((me, target, typing_only))
    return modules, edges


def upward(edges) -> list[tuple[str, str, bool]]:
    """Imports pointing to a higher layer (TYPE_CHECKING ones count)."""
    return sorted(e for e in edges if layer_of(e[1]) < layer_of(e[0]))


def cycles(modules, edges) -> list[list[str]]:
    """Import cycles between modules (TYPE_CHECKING imports count), one per strongly connected group."""
    graph = {m: sorted({b for a, b, _t in edges if a == m}) for m in modules}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def connect(v):  # Tarjan's algorithm, iterative enough for a package of this size
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for m in modules:
        if m not in index:
            connect(m)
    return out


def dot_source(modules, edges) -> str:
    lines = [
        "digraph imports {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.15, ranksep=0.5];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", fontname="Helvetica", fontsize=9];',
        '  edge [color="#888888", arrowsize=0.5];',
    ]
    for i, (label, _prefixes) in enumerate(LAYERS):
        members = [m for m in modules if layer_of(m) == i]
        if not members:
            continue
        lines.append(f'  subgraph cluster_{i} {{ label="{label}"; style=rounded; color="#bbbbbb";')
        for m in members:
            lines.append(f'    "{m}" [label="{m.removeprefix("nbsteps.")}"];')
        lines.append("  }")
    bad = set(upward(edges))
    for a, b, typing_only in sorted(edges):
        attrs = []
        if typing_only:
            attrs.append("style=dashed")
        if (a, b, typing_only) in bad:
            attrs.append('color="#d62728", penwidth=2')
        lines.append(f'  "{a}" -> "{b}"' + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def group_of(module: str) -> str:
    """The folder (package) a module belongs to; the small top-level modules go by layer."""
    parts = module.split(".")
    if len(parts) >= 3 and (PACKAGE.joinpath(*parts[1:-1]) / "__init__.py").exists() and len(parts) > 3:
        return ".".join(parts[:3])
    if len(parts) >= 2 and (PACKAGE / parts[1] / "__init__.py").exists():
        return ".".join(parts[:2])
    return LAYERS[layer_of(module)][0] if layer_of(module) < len(LAYERS) else module


def package_dot(modules, edges) -> str:
    """One box per folder, grouped by layer; an arrow per folder pair, labelled with its imports."""
    from collections import Counter

    counts = Counter((group_of(a), group_of(b)) for a, b, _t in edges if group_of(a) != group_of(b))
    groups = sorted({group_of(m) for m in modules})
    lines = [
        "digraph folders {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=11];',
        '  edge [color="#777777", arrowsize=0.6, fontname="Helvetica", fontsize=8, fontcolor="#555555"];',
    ]
    layer = {group_of(m): layer_of(m) for m in modules}
    for i, (label, _prefixes) in enumerate(LAYERS):
        members = [g for g in groups if layer[g] == i]
        if not members:
            continue
        lines.append(f'  subgraph cluster_{i} {{ label="{label}"; style=rounded; color="#bbbbbb"; rank=same;')
        for g in members:
            n = sum(1 for m in modules if group_of(m) == g)
            names = sorted(m.rpartition(".")[2] for m in modules if group_of(m) == g)
            title = (
                g.removeprefix("nbsteps.").replace(".", "/") + "/"
                if g.startswith("nbsteps")
                else ", ".join(f"{m}.py" for m in names)
            )
            lines.append(f'    "{g}" [label="{title}\\n{n} module{"s" if n > 1 else ""}"];')
        lines.append("  }")
    layer = {group_of(m): layer_of(m) for m in modules}
    for (a, b), n in sorted(counts.items()):
        up = layer[a] > layer[b]  # a lower layer importing a higher one
        lines.append(f'  "{a}" -> "{b}" [label="{n}"' + (', color="#d62728"' if up else "") + "];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check: exit 1 on an upward import")
    parser.add_argument("--out", default=str(ROOT / "docs" / "imports"), help="output path without suffix")
    args = parser.parse_args(argv)
    modules, edges = collect()
    bad = upward(edges)
    for a, b, typing_only in bad:
        print(f"upward import: {a} -> {b}" + (" (TYPE_CHECKING)" if typing_only else ""), file=sys.stderr)
    loops = cycles(modules, edges)
    for group in loops:
        print(f"import cycle: {' <-> '.join(group)}", file=sys.stderr)
    if args.check:
        return 1 if bad or loops else 0
    import subprocess

    for out, source in (
        (args.out, package_dot(modules, edges)),
        (args.out + "-modules", dot_source(modules, edges)),
    ):
        Path(out + ".dot").write_text(source, encoding="utf-8")
        svg = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True).stdout
        Path(out + ".svg").write_bytes(svg)
        print(f"wrote {out}.dot and {out}.svg")
    print(f"{len(modules)} modules, {len(edges)} imports, {len(bad)} upward, {len(loops)} cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
