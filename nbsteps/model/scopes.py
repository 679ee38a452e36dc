"""Python's own scoping for one cell, walked in source order.

Top level: a module scope walked in order (a name read before the cell binds it is an input; names
bound at the end are outputs; ``del`` and the end of ``except ... as e`` unbind). Functions, lambdas,
classes and comprehensions are scopes as in CPython: a name a function binds is local unless
``global``/``nonlocal``; free names resolve through enclosing functions (never a class body), else to
the cell's globals; a class body runs at once, in order; a comprehension's first iterable is evaluated
outside it, and a walrus in it binds in the enclosing function or the cell. A ``def`` body runs when
called: a :class:`Summary` of its reads, ``global`` writes and changes applies where the cell uses its
name (transitively); globals read by functions never used are inputs too (``later``: read when
they are called, not by the cell that defines them). Methods share one summary.
"""

from __future__ import annotations

import ast

MODULE, FUNCTION, CLASS, COMP = "module", "function", "class", "comprehension"
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_SKIP = frozenset(("ctx", "op", "ops", "type_comment", "kind"))
# evaluation order where it differs from the order of the fields
_ORDER = {
    ast.Assign: ("value", "targets"),
    ast.For: ("iter", "target", "body", "orelse"),
    ast.AsyncFor: ("iter", "target", "body", "orelse"),
    ast.NamedExpr: ("value", "target"),
}
# fields that never hold a node (identifiers, constants, flags: Python's ASDL grammar)
_LEAF_FIELDS = frozenset(
    (
        "id",
        "name",
        "attr",
        "arg",
        "asname",
        "module",
        "level",
        "conversion",
        "is_async",
        "simple",
        "tag",
        "rest",
    )
    + ("kwd_attrs", "lineno", "n", "s")
)
_FIELDS = {
    c: tuple(  # the fields to walk, by node class
        f
        for f in _ORDER.get(c, c._fields)
        if f not in _SKIP
        and f not in _LEAF_FIELDS
        and not (f == "names" and c in (ast.Global, ast.Nonlocal))
        and not (f == "value" and issubclass(c, (ast.Constant, ast.MatchSingleton)))
    )
    for c in vars(ast).values()
    if isinstance(c, type) and issubclass(c, ast.AST)
}
_AST = ast.AST


class Scope:
    __slots__ = ("kind", "parent", "locals", "globals", "nonlocals", "bound", "summary")

    def __init__(self, kind, parent, local=frozenset(), glob=frozenset(), nonloc=frozenset(), summary=None):
        self.kind, self.parent, self.locals, self.globals, self.nonlocals = kind, parent, local, glob, nonloc
        self.summary, self.bound = (
            summary,
            set(),
        )  # a top-level def's Summary; a class body's names bound so far


class Summary:
    """What calling a function the cell defines does to the cell's globals."""

    __slots__ = ("reads", "writes", "mutates", "params", "param_mut", "state", "effects", "applied")

    def __init__(self, params=()):
        self.reads, self.writes, self.mutates, self.param_mut, self.state, self.effects = (
            set() for _ in range(6)
        )
        self.params, self.applied = params, False  # param_mut: the parameters whose argument it changes


def arg_names(args: ast.arguments) -> tuple:
    return tuple(
        a.arg for a in args.posonlyargs + args.args + [args.vararg] + args.kwonlyargs + [args.kwarg] if a
    )


def arg_exprs(node) -> list:
    """Decorators, defaults and annotations of a def or lambda: evaluated where it is defined."""
    args = node.args
    every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
    return (
        getattr(node, "decorator_list", [])
        + args.defaults
        + [d for d in args.kw_defaults if d is not None]
        + [a.annotation for a in every if a is not None and a.annotation is not None]
        + [r for r in (getattr(node, "returns", None),) if r is not None]
    )


def children(node) -> list:
    out = []
    for field in _FIELDS[type(node)]:
        value = getattr(node, field, None)
        if type(value) is list:
            out += [v for v in value if v is not None]  # Dict.keys, arguments.kw_defaults hold None
        elif value is not None:
            out.append(value)
    return out


def collect(body) -> tuple:
    """(bound, global, nonlocal) names of the scope whose statements are *body*."""
    names, glob, nonloc = set(), set(), set()
    stack = [(n, False) for n in body]
    while stack:
        node, in_comp = stack.pop()  # in a comprehension only walrus targets bind here
        t = type(node)
        if t is ast.Name:
            if not in_comp and type(node.ctx) is not ast.Load:
                names.add(node.id)
        elif t is ast.NamedExpr:
            names.add(node.target.id)
            stack.append((node.value, in_comp))
        elif t in _DEFS or t is ast.Lambda:
            if t is not ast.Lambda:
                names.add(node.name)
            extra = (
                node.decorator_list + node.bases + [k.value for k in node.keywords]
                if t is ast.ClassDef
                else arg_exprs(node)
            )
            stack += [(e, in_comp) for e in extra]
        elif t in _COMPS:
            gens = node.generators
            rest = [node.key, node.value] if t is ast.DictComp else [node.elt]
            for i, g in enumerate(gens):
                rest += g.ifs + ([g.iter] if i else [])
            stack += [(gens[0].iter, in_comp)] + [(e, True) for e in rest]
        else:
            if t is ast.Global or t is ast.Nonlocal:
                (glob if t is ast.Global else nonloc).update(node.names)
            elif t is ast.Import or t is ast.ImportFrom:
                names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
            elif t in (ast.ExceptHandler, ast.MatchAs, ast.MatchStar, ast.MatchMapping):
                name = node.rest if t is ast.MatchMapping else node.name
                names.update([name] if name else ())
            stack += [(c, in_comp) for c in children(node)]
    return names, glob, nonloc


def root_name(node) -> str | None:
    """``df`` for ``df["a"].b[0]``; None when the root is not a plain name."""
    while type(node) in (ast.Attribute, ast.Subscript, ast.Starred):
        node = node.value
    return node.id if type(node) is ast.Name else None


class Walker:
    """Ordered walk of a cell: ``inputs``, ``outputs`` (a dict, in binding order), ``mutated``,
    ``state``, ``effects``, ``warnings``. A subclass adds the rules about values and state
    through ``on_call(call, used) -> handled``, ``after_call``, ``on_changed``, ``on_load``
    and ``on_import_star``."""

    CONVENTIONS: dict = {}  # usual module aliases (np, pd, ...) for names the cell does not bind
    SHARED: frozenset = frozenset()  # other shared objects (builtins) when the cell does not bind the name

    def __init__(self) -> None:
        self.scope = Scope(MODULE, None)
        self.sink: Summary | None = None  # receives the global effects of the def body being walked
        self.defsink: Summary | None = None  # the summary of a top-level class's methods
        self.bound, self.inputs, self.mutated, self.state, self.effects = set(), set(), set(), set(), set()
        self.outputs, self.funcs, self.aliases = {}, {}, {}  # funcs: name -> Summary; aliases: name -> module
        self.imported: set = set()  # names an `import` statement binds: modules
        self.warnings: list = []
        self.later: set = set()  # inputs read only in the bodies of functions it never calls (run)

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls._dispatch = _dispatch_table(cls)

    def run(self, body) -> "Walker":
        self.visit_all(body)
        read = set(self.inputs)
        for f in list(self.funcs.values()):  # functions never used here read their globals later
            if not f.applied:
                self.inputs.update(r for r in f.reads if r not in self.bound)
        # the inputs only functions it defines and never calls read: read when called, by the caller
        self.later = self.inputs - read
        return self

    def visit(self, node) -> None:
        method = self._dispatch.get(type(node))
        if method is not None:
            return method(self, node)
        for field in _FIELDS[type(node)]:  # children(node), in order, without the list
            value = getattr(node, field, None)
            if type(value) is list:
                for v in value:
                    if v is not None:
                        self.visit(v)
            elif value is not None:
                self.visit(value)

    def visit_all(self, nodes) -> None:
        for n in nodes:
            self.visit(n)

    def enter(self, scope: Scope, nodes, sinks: tuple | None = None) -> None:
        saved = self.scope, self.sink, self.defsink
        self.scope = scope
        if sinks is not None:
            self.sink, self.defsink = sinks
        try:
            self.visit_all(nodes)
        finally:
            self.scope, self.sink, self.defsink = saved

    # -- names ---------------------------------------------------------------------
    def is_global(self, n: str) -> bool:
        s, first = self.scope, True
        while s.kind is not MODULE:
            if n in s.globals:
                return True
            if s.kind is CLASS:  # seen only from its own body, in order (LOAD_NAME)
                if first and (n in s.bound or n in s.locals):
                    return n not in s.bound
            elif n in s.locals or n in s.nonlocals:
                return False
            s, first = s.parent, False
        return True

    def path(self, node) -> str | None:
        """Dotted module path of a name or attribute chain rooted at a module
        (``np.random.seed`` -> ``numpy.random.seed``), else None."""
        t = type(node)
        if t is ast.Attribute or t is ast.Subscript:
            p = self.path(node.value)
            return p and (p + "." + node.attr if t is ast.Attribute else p)
        if t is not ast.Name or not (self.scope.kind is MODULE or self.is_global(node.id)):
            return None
        return self.aliases.get(node.id) or (None if node.id in self.bound else self.CONVENTIONS.get(node.id))

    def is_module(self, n: str) -> bool:  # or another object shared by the whole process
        return n in self.aliases or (n not in self.bound and (n in self.CONVENTIONS or n in self.SHARED))

    def load(self, n: str) -> None:
        if self.scope.kind is MODULE or self.is_global(n):
            self.read_top(n) if self.sink is None else self.sink.reads.add(n)

    def read_top(self, n: str) -> None:
        if n not in self.bound:
            self.inputs.add(n)
        f = self.funcs.get(n)
        if f is not None and not f.applied:  # the cell uses a function it defined: it may run now
            f.applied = True
            for act, names in ((self.read_top, f.reads), (self.mutate_top, f.mutates), (self.bind, f.writes)):
                for name in sorted(names):
                    act(name)
            self.state |= f.state
            self.effects |= f.effects

    def store(self, n: str, summary: Summary | None = None, alias: str | None = None) -> None:
        s = self.scope
        while s.kind is COMP and n not in s.locals:  # a walrus: binds in the enclosing function or the cell
            s = s.parent
        if s.kind is CLASS and n not in s.globals:
            s.bound.add(n)
        elif s.kind is MODULE or n in s.globals:
            if self.sink is not None:
                return self.sink.writes.add(n)
            self.bind(n, summary)
            if alias:
                self.aliases[n] = alias

    def bind(self, n: str, summary: Summary | None = None) -> None:
        self.bound.add(n)
        self.outputs.setdefault(n)
        self.aliases.pop(n, None)
        if summary is None:
            self.funcs.pop(n, None)
        else:
            self.funcs[n] = summary

    def delete(self, n: str, implicit: bool = False) -> None:
        s = self.scope
        if s.kind is CLASS and n not in s.globals:
            s.bound.discard(n)
        elif s.kind is MODULE or n in s.globals:
            if self.sink is not None:
                return self.sink.reads.add(n)
            if not implicit:
                self.read_top(n)  # del needs the name to exist
            self.bound.discard(n)
            for d in (self.outputs, self.funcs, self.aliases):
                d.pop(n, None)

    def mutate(self, n: str | None) -> None:
        """The value *n* names is changed in place (now, or when the def runs)."""
        s = self.scope
        if n is None:
            return
        if s.kind is MODULE or self.is_global(n):
            if self.sink is None:
                self.mutate_top(n)
            elif not self.is_module(n):
                self.sink.reads.add(n)
                self.sink.mutates.add(n)
        elif s.summary is not None and s.summary is self.sink and n in s.summary.params:
            self.sink.param_mut.add(n)

    def mutate_top(self, n: str) -> None:
        if self.is_module(n):
            return  # a module is shared process state, never a step's value
        if n not in self.bound:
            self.inputs.add(n)
            self.mutated.add(n)
        self.bind(n, self.funcs.get(n))

    def label(self, label: str, effect: bool = False) -> None:
        target = self.sink or self
        target.state.add(label)
        if effect:
            target.effects.add(label)

    # -- expressions -----------------------------------------------------------------
    def visit_Name(self, node) -> None:
        ctx, n = type(node.ctx), node.id
        if ctx is ast.Store:
            return self.store(n)
        if ctx is ast.Del:
            return self.delete(n)
        self.load(n)
        p = self.path(node) if n in self.aliases or n in self.CONVENTIONS else None
        if p:
            self.on_load(p)

    def visit_Attribute(self, node) -> None:
        if type(node.ctx) is not ast.Load:  # assigned or deleted: reads the container, changes it
            self.visit_all(children(node))
            return self.on_changed(node)
        if type(node) is ast.Subscript:
            return self.visit_all(children(node))
        root = node.value
        while type(root) is ast.Attribute:
            root = root.value
        p = self.path(node) if type(root) is ast.Name else None
        if p:
            self.on_load(p)
        self.visit(root)

    visit_Subscript = visit_Attribute

    def visit_Call(self, node, used: bool = True) -> None:
        if not self.on_call(node, used):
            self.visit(node.func)
            self.visit_all(node.args)
            self.visit_all(k.value for k in node.keywords)
            self.after_call(node, used)

    def visit_Lambda(self, node) -> None:
        self.visit_all(arg_exprs(node))
        names, glob, nonloc = collect([node.body])
        self.enter(Scope(FUNCTION, self.scope, names | set(arg_names(node.args)), glob, nonloc), [node.body])

    def visit_comprehension_node(self, node) -> None:
        gens = node.generators
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        inner = [x for i, g in enumerate(gens) for x in ([g.iter] if i else []) + [g.target] + g.ifs]
        inner += [node.key, node.value] if type(node) is ast.DictComp else [node.elt]
        self.enter(Scope(COMP, self.scope, set().union(*(collect([g.target])[0] for g in gens))), inner)

    def visit_BinOp(self, node) -> None:  # (the generic walk's order, without its loop over _FIELDS)
        self.visit(node.left)
        self.visit(node.right)

    # -- statements ------------------------------------------------------------------
    def visit_Assign(self, node) -> None:  # the value, then the targets (_ORDER), as the generic walk
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_Expr(self, node) -> None:
        value = node.value.value if type(node.value) is ast.Await else node.value
        if type(value) is ast.Call:  # its result is not used (or only shown)
            return self.visit_Call(value, used=False)
        self.visit(node.value)

    def visit_FunctionDef(self, node) -> None:
        self.visit_all(arg_exprs(node))
        params = arg_names(node.args)
        fresh = self.sink is None and self.defsink is None
        summary = Summary(params) if fresh else (self.sink or self.defsink)
        names, glob, nonloc = collect(node.body)
        scope = Scope(
            FUNCTION,
            self.scope,
            (names | set(params)) - glob - nonloc,
            glob,
            nonloc,
            summary if fresh else None,
        )
        self.enter(scope, node.body, (summary, None))
        self.store(node.name, summary if fresh else None)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node) -> None:
        self.visit_all(node.decorator_list + node.bases + [k.value for k in node.keywords])
        summary = Summary() if self.sink is None and self.defsink is None else None
        names, glob, nonloc = collect(node.body)
        scope = Scope(CLASS, self.scope, names - glob - nonloc, glob, nonloc)
        self.enter(scope, node.body, (self.sink, summary or self.defsink))
        self.store(node.name, summary)

    def visit_AugAssign(self, node) -> None:
        self.visit(node.value)
        if type(node.target) is not ast.Name:
            return self.visit(node.target)
        n = node.target.id
        self.load(n), self.mutate(n), self.store(n)

    def visit_AnnAssign(self, node) -> None:
        if self.scope.kind is not FUNCTION:  # evaluated in modules and class bodies only
            self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.visit(node.target)
        elif type(node.target) is not ast.Name:
            self.visit(node.target.value)

    def visit_ExceptHandler(self, node) -> None:
        self.visit_all([node.type] if node.type else [])
        if node.name:
            self.store(node.name)
        self.visit_all(node.body)
        if node.name:
            self.delete(node.name, implicit=True)  # Python deletes it when the handler ends

    def visit_Import(self, node) -> None:
        for a in node.names:
            name = a.asname or a.name.split(".")[0]
            self.store(name, alias=a.name if a.asname else name)
            if self.scope.kind is MODULE:
                self.imported.add(name)

    def visit_ImportFrom(self, node) -> None:
        mod = node.module or ""
        # (``from __future__ import x`` binds x too, a ``__future__._Feature``, as in Run All)
        for a in node.names:
            star = a.name == "*"
            for name in self.on_import_star(mod, node.level) if star else [a.name]:
                self.store(
                    name if star else (a.asname or name), alias=None if node.level else f"{mod}.{name}"
                )

    def visit_MatchAs(self, node) -> None:  # also MatchStar and MatchMapping: capture patterns
        self.visit_all(children(node))
        name = node.rest if type(node) is ast.MatchMapping else node.name
        if name:
            self.store(name)

    visit_MatchStar = visit_MatchMapping = visit_MatchAs


def _dispatch_table(cls) -> dict:
    """AST node class -> visit method of *cls* (a subclass may override them); leaves need no walk."""
    names = [n for n in dir(cls) if n.startswith("visit_") and isinstance(getattr(ast, n[6:], None), type)]
    leaves = dict.fromkeys(
        (ast.Constant, ast.Pass, ast.Break, ast.Continue, ast.Global, ast.Nonlocal), lambda walker, node: None
    )
    table = {getattr(ast, n[6:]): getattr(cls, n) for n in names}
    return table | dict.fromkeys(_COMPS, cls.visit_comprehension_node) | leaves


Walker._dispatch = _dispatch_table(Walker)
