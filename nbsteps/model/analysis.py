"""Static analysis of a step's cell with :mod:`ast`.

From the source of a ``%%step`` cell this finds

- **outputs**: names the cell binds at top level (assignment, ``def``,
  ``class``, ``import``, augmented assignment, ``for`` targets, ``with ... as``,
  ``:=``), plus names it changes in place;
- **inputs**: free names it reads (before binding them), including names that
  functions and classes defined in the cell read from the global scope;
- **mutated**: inputs it changes in place (``df["z"] = ...``, ``obj.a = ...``,
  ``del d[k]``, ``x += ...``, ``lst.append(...)``, ``inplace=True``): the step
  gets its own shallow copy of those so the upstream checkpoint never changes;
- **result**: whether the last statement is an expression (IPython's ``Out``),
  unless the cell ends with ``;``.

It also compiles the cell once, into a body and a result expression.
"""
from __future__ import annotations

import ast
import builtins
import linecache
from dataclasses import dataclass
from types import CodeType

from nbsteps.errors import StepDefinitionError
from nbsteps.model.fingerprint import code_digest

#: method names that change their receiver in place
MUTATING_METHODS = frozenset(
    """append extend insert remove pop clear update setdefault popitem add discard
    sort reverse difference_update intersection_update symmetric_difference_update
    appendleft extendleft rotate __setitem__ __delitem__ resize put itemset""".split()
)
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class CellAnalysis:
    source: str
    filename: str
    inputs: frozenset
    outputs: tuple
    mutated: frozenset
    has_result: bool
    digest: str  # of the normalised source (comments and layout ignored)
    body: CodeType
    result: CodeType | None


def _root_name(node: ast.AST) -> str | None:
    """``df`` for ``df["a"].b[0]``; None when the root is not a plain name."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _target_names(target: ast.AST, out: list) -> None:
    """Names bound by an assignment target (tuples, lists, starred)."""
    if isinstance(target, ast.Name):
        out.append(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _target_names(elt, out)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, out)


class _Scope(ast.NodeVisitor):
    """Collects the names an expression or nested scope reads from outside.

    Nested functions, lambdas, classes and comprehensions are analysed as their
    own scopes: their free names count as reads of the enclosing scope.
    """

    def __init__(self) -> None:
        self.loads: set[str] = set()
        self.binds: set[str] = set()
        self.mutated: set[str] = set()

    # NodeVisitor's visit/generic_visit, with the method lookup cached per class
    _dispatch: dict = {}

    def visit(self, node):
        cls = node.__class__
        method = _Scope._dispatch.get(cls)
        if method is None:
            method = _Scope._dispatch[cls] = getattr(_Scope, "visit_" + cls.__name__, _Scope.generic_visit)
        return method(self, node)

    def generic_visit(self, node) -> None:
        AST = ast.AST
        for name in node._fields:
            try:
                value = getattr(node, name)
            except AttributeError:
                continue
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, AST):
                        self.visit(item)
            elif isinstance(value, AST):
                self.visit(value)

    # -- names ---------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.binds.add(node.id)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            root = _root_name(func.value)
            if root and (
                func.attr in MUTATING_METHODS
                or any(
                    k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in node.keywords
                )
            ):
                self.mutated.add(root)
        self.generic_visit(node)

    # -- nested scopes -------------------------------------------------------
    def _nested(self, args: ast.arguments | None, body: list, extra_binds=()) -> None:
        inner = _Scope()
        if args is not None:
            for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if a is not None:
                    inner.binds.add(a.arg)
        inner.binds.update(extra_binds)
        for stmt in body:
            inner.visit(stmt)
        self.loads |= inner.loads - inner.binds

    def _decorated(self, node) -> None:
        for d in node.decorator_list:
            self.visit(d)
        self.binds.add(node.name)

    def visit_FunctionDef(self, node) -> None:
        self._decorated(node)
        for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(d)
        self._nested(node.args, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for d in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(d)
        self._nested(node.args, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._decorated(node)
        for b in node.bases + [k.value for k in node.keywords]:
            self.visit(b)
        self._nested(None, node.body)

    def _comprehension(self, node, elts) -> None:
        inner = _Scope()
        for gen in node.generators:
            inner.visit(gen.iter)
            inner.visit(gen.target)
            for cond in gen.ifs:
                inner.visit(cond)
        for e in elts:
            inner.visit(e)
        self.loads |= inner.loads - inner.binds
        self.mutated |= inner.mutated

    def visit_ListComp(self, node) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node) -> None:
        self._comprehension(node, [node.key, node.value])

    # -- imports -------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.binds.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.binds.add(alias.asname or alias.name)


class _TopLevel:
    """Walks top-level statements in order, tracking what is bound so far."""

    def __init__(self) -> None:
        self.inputs: set[str] = set()
        self.outputs: list[str] = []
        self.bound: set[str] = set()
        self.mutated: set[str] = set()

    def _read(self, names) -> None:
        self.inputs.update(n for n in names if n not in self.bound)

    def _bind(self, names) -> None:
        for n in names:
            if n not in self.bound:
                self.bound.add(n)
            if n not in self.outputs:
                self.outputs.append(n)

    def _expr(self, node: ast.AST | None) -> None:
        if node is None:
            return
        scope = _Scope()
        scope.visit(node)
        self._read(scope.loads)
        self._mutate(scope.mutated)
        self._bind(scope.binds)  # walrus targets

    def _mutate(self, roots) -> None:
        for r in roots:
            if r not in self.bound:
                self.inputs.add(r)
                self.mutated.add(r)
            self._bind([r])

    def _target(self, target: ast.AST) -> None:
        """An assignment target: plain names are bound, ``a[i]``/``a.b`` mutate ``a``."""
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._target(elt)
            return
        if isinstance(target, ast.Starred):
            self._target(target.value)
            return
        if isinstance(target, (ast.Subscript, ast.Attribute)):
            scope = _Scope()
            scope.visit(target)  # reads the index expressions and the root
            self._read(scope.loads)
            root = _root_name(target)
            if root:
                self._mutate([root])
            return
        names: list[str] = []
        _target_names(target, names)
        self._bind(names)

    def block(self, stmts: list) -> None:
        for stmt in stmts:
            self.stmt(stmt)

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign):
            self._expr(node.value)
            for t in node.targets:
                self._target(t)
        elif isinstance(node, ast.AnnAssign):
            self._expr(node.value)
            if node.value is not None or not isinstance(node.target, ast.Name):
                self._target(node.target)
        elif isinstance(node, ast.AugAssign):
            self._expr(node.value)
            if isinstance(node.target, ast.Name):
                self._read([node.target.id])
                if node.target.id not in self.bound:
                    self.mutated.add(node.target.id)
                self._bind([node.target.id])
            else:
                self._target(node.target)
        elif isinstance(node, ast.Delete):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self._read([t.id])
                else:
                    self._target(t)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._expr(node.iter)
            self._target(node.target)
            self.block(node.body)
            self.block(node.orelse)
        elif isinstance(node, ast.While):
            self._expr(node.test)
            self.block(node.body)
            self.block(node.orelse)
        elif isinstance(node, ast.If):
            self._expr(node.test)
            self.block(node.body)
            self.block(node.orelse)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self._expr(item.context_expr)
                if item.optional_vars is not None:
                    self._target(item.optional_vars)
            self.block(node.body)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.block(node.body)
            for h in node.handlers:
                self._expr(h.type)
                if h.name:
                    self._bind([h.name])
                self.block(h.body)
            self.block(node.orelse)
            self.block(node.finalbody)
        else:
            # def, class, import, expressions, return, assert, raise, match...
            scope = _Scope()
            scope.visit(node)
            self._read(scope.loads)
            self._mutate(scope.mutated)
            self._bind(sorted(scope.binds))


def step_filename(name: str) -> str:
    return f"<step {name}>"


def analyse_cell(name: str, source: str) -> CellAnalysis:
    """Analyse and compile a step's source; a SyntaxError becomes a clear error."""
    filename = step_filename(name)
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        where = f"line {exc.lineno}" + (f": {line.strip()}" if line.strip() else "")
        raise StepDefinitionError(
            f"syntax error in step {name!r} at {where} ({exc.msg}). "
            f"Fix the cell and run it again; the previous definition of {name!r} (if any) stays registered."
        ) from None
    walker = _TopLevel()
    walker.block(tree.body)

    body = tree.body
    result_expr = None
    if body and isinstance(body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        result_expr = ast.Expression(body=body[-1].value)
        body = body[:-1]
    module = ast.Module(body=body, type_ignores=[])
    # register the source so tracebacks through the step show its lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        body_code = compile(module, filename, "exec")
        result_code = compile(result_expr, filename, "eval") if result_expr is not None else None
    except SyntaxError as exc:  # e.g. 'return' outside function
        raise StepDefinitionError(
            f"syntax error in step {name!r} at line {exc.lineno} ({exc.msg}). Fix the cell and run it again."
        ) from None

    inputs = frozenset(n for n in walker.inputs if n not in _BUILTINS or n in walker.mutated)
    # the compiled code ignores comments and layout; code_digest ignores line numbers
    digest = code_digest(body_code) + (code_digest(result_code) if result_code is not None else "")
    return CellAnalysis(
        source=source,
        filename=filename,
        inputs=inputs,
        outputs=tuple(walker.outputs),
        mutated=frozenset(walker.mutated),
        has_result=result_code is not None,
        digest=digest,
        body=body_code,
        result=result_code,
    )
