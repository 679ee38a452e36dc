"""Python's own scoping for one cell, walked in source order.

The top level is a module scope walked in order: a name read before the cell
binds it is an input; names bound at the end are outputs (``del`` and the end
of ``except ... as e`` unbind). Functions, lambdas, classes and comprehensions
are scopes as in CPython: a name a function binds anywhere is local unless
``global``/``nonlocal``; free names resolve through enclosing functions (never a
class body), else to the cell's globals; a class body runs at once, in order; a
comprehension's first iterable is evaluated outside it; a walrus in it binds in
the enclosing function or the cell. A ``def`` body runs when called: its reads,
``global`` writes and changes are kept in a :class:`Summary` applied where the
cell uses the function's name (transitively); globals read by functions never
used are inputs too. A class's methods share one summary, applied where the
class is used. nbsteps' own rules hook in through ``on_*`` (see
:class:`nbsteps.analysis.CellWalker`).
"""
from __future__ import annotations

import ast

MODULE, FUNCTION, CLASS, COMP = "module", "function", "class", "comprehension"
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_SKIP = frozenset(("ctx", "op", "ops", "type_comment", "kind"))


class Scope:
    __slots__ = ("kind", "parent", "locals", "globals", "nonlocals", "bound", "params", "summary", "aliases")

    def __init__(self, kind, parent, local=frozenset(), glob=frozenset(), nonloc=frozenset(), params=(), summary=None):
        self.kind, self.parent, self.locals, self.globals, self.nonlocals = kind, parent, local, glob, nonloc
        self.params, self.summary = params, summary  # a top-level def: its parameters and summary
        self.bound: set = set()   # class bodies: names bound so far
        self.aliases: dict = {}   # names imported here -> dotted module path


class Summary:
    """What calling a function the cell defines does to the cell's globals."""

    __slots__ = ("reads", "writes", "mutates", "params", "param_mut", "state", "effects", "applied")

    def __init__(self, params=()):
        self.reads, self.writes, self.mutates, self.param_mut = set(), set(), set(), set()
        self.state, self.effects = set(), set()
        self.params = params  # parameter names in order; param_mut: those whose argument it changes
        self.applied = False


def arg_names(args: ast.arguments) -> tuple:
    extra = [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return tuple(a.arg for a in args.posonlyargs + args.args + args.kwonlyargs) + tuple(extra)


def arg_exprs(args: ast.arguments) -> list:
    """Defaults and annotations: evaluated where the function is defined."""
    out = args.defaults + [d for d in args.kw_defaults if d is not None]
    every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
    return out + [a.annotation for a in every if a is not None and a.annotation is not None]


def children(node):
    for field in node._fields:
        if field not in _SKIP:
            value = getattr(node, field, None)
            if type(value) is list:
                yield from (v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                yield value


def collect(body) -> tuple:
    """(bound, global, nonlocal) names of the scope whose statements are *body*."""
    names, glob, nonloc = set(), set(), set()
    stack = [(n, False) for n in body]
    while stack:
        node, in_comp = stack.pop()
        t = type(node)
        if t is ast.Name:
            if not in_comp and type(node.ctx) is not ast.Load:
                names.add(node.id)
            continue
        if t is ast.NamedExpr:
            names.add(node.target.id)
            stack.append((node.value, in_comp))
            continue
        if t in _DEFS:
            names.add(node.name)
            extra = node.decorator_list + (node.bases + [k.value for k in node.keywords] if t is ast.ClassDef
                                           else arg_exprs(node.args) + [r for r in (node.returns,) if r])
            stack += [(e, in_comp) for e in extra]
            continue
        if t is ast.Lambda:
            stack += [(e, in_comp) for e in arg_exprs(node.args)]
            continue
        if t in _COMPS:  # only walrus targets escape; the first iterable is evaluated here
            gens = node.generators
            stack.append((gens[0].iter, in_comp))
            rest = [node.key, node.value] if t is ast.DictComp else [node.elt]
            for i, g in enumerate(gens):
                rest += g.ifs + ([g.iter] if i else [])
            stack += [(e, True) for e in rest]
            continue
        if t is ast.Global:
            glob.update(node.names)
        elif t is ast.Nonlocal:
            nonloc.update(node.names)
        elif t is ast.Import or t is ast.ImportFrom:
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif t is ast.ExceptHandler or t is ast.MatchAs or t is ast.MatchStar:
            if node.name:
                names.add(node.name)
        elif t is ast.MatchMapping and node.rest:
            names.add(node.rest)
        stack += [(c, in_comp) for c in children(node)]
    return names, glob, nonloc


def root_name(node) -> str | None:
    """``df`` for ``df["a"].b[0]``; None when the root is not a plain name."""
    while type(node) in (ast.Attribute, ast.Subscript, ast.Starred):
        node = node.value
    return node.id if type(node) is ast.Name else None


class Walker:
    """Ordered walk of a cell's statements. Results: ``inputs``, ``outputs``
    (a dict, in binding order), ``mutated``, ``state``, ``effects``, ``warnings``."""

    CONVENTIONS: dict = {}  # usual module aliases (np, pd, ...) when the cell does not bind them

    def __init__(self) -> None:
        self.scope = Scope(MODULE, None)
        self.aliases = self.scope.aliases  # cell-level imports -> dotted module path
        self.sink: Summary | None = None     # receives the global effects of a def body
        self.defsink: Summary | None = None  # the summary of a top-level class's methods
        self.bound, self.inputs, self.mutated, self.state, self.effects = set(), set(), set(), set(), set()
        self.outputs: dict = {}
        self.funcs: dict = {}  # cell-level name -> Summary of the def/class it names
        self.warnings: list = []

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls._dispatch = _dispatch_table(cls)

    def run(self, body) -> "Walker":
        self.visit_all(body)
        for f in list(self.funcs.values()):  # functions never used here read their globals later
            if not f.applied:
                self.inputs.update(r for r in f.reads if r not in self.bound)
        return self

    def visit(self, node) -> None:
        method = self._dispatch.get(type(node))
        if method is None:
            for child in children(node):
                self.visit(child)
        else:
            method(self, node)

    def visit_all(self, nodes) -> None:
        for n in nodes:
            self.visit(n)

    def enter(self, scope: Scope, nodes) -> None:
        saved, self.scope = self.scope, scope
        try:
            self.visit_all(nodes)
        finally:
            self.scope = saved

    # -- names -----------------------------------------------------------------
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

    def at_top(self, n: str) -> bool:
        """Does *n* here mean the cell's global *n*, acted on now (not in a def body)?"""
        return self.sink is None and (self.scope.kind is MODULE or self.is_global(n))

    def path(self, node) -> str | None:
        """Dotted module path of a name or attribute chain rooted at a module
        (``np.random.seed`` -> ``numpy.random.seed``), else None."""
        t = type(node)
        if t is ast.Attribute:
            p = self.path(node.value)
            return p and p + "." + node.attr
        if t is ast.Subscript:
            return self.path(node.value)
        if t is not ast.Name:
            return None
        n = node.id
        if self.scope.kind is not MODULE and not self.is_global(n):
            return self.scope.aliases.get(n)
        return self.aliases.get(n) or (None if n in self.bound else self.CONVENTIONS.get(n))

    def is_module(self, n: str) -> bool:
        return n in self.aliases or (n not in self.bound and n in self.CONVENTIONS)

    def load(self, n: str) -> None:
        if self.scope.kind is MODULE or self.is_global(n):
            if self.sink is None:
                self.read_top(n)
            else:
                self.sink.reads.add(n)

    def read_top(self, n: str) -> None:
        if n not in self.bound:
            self.inputs.add(n)
        f = self.funcs.get(n)
        if f is not None and not f.applied:  # the cell uses a function it defined
            f.applied = True
            for r in sorted(f.reads):
                self.read_top(r)
            for m in sorted(f.mutates):
                self.mutate_top(m)
            for w in sorted(f.writes):
                self.bind(w)
            self.state |= f.state
            self.effects |= f.effects

    def store(self, n: str, summary: Summary | None = None) -> None:
        s = self.scope
        if s.kind is MODULE or n in s.globals:
            if self.sink is None:
                self.bind(n, summary)
            else:
                self.sink.writes.add(n)
        elif s.kind is CLASS:
            s.bound.add(n)

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
                self.sink.reads.add(n)
                return
            if not implicit:
                self.read_top(n)  # del needs the name to exist
            self.bound.discard(n)
            for d in (self.outputs, self.funcs, self.aliases):
                d.pop(n, None)

    def mutate(self, n: str | None) -> None:
        """The value *n* names is changed in place (now, or when the def runs)."""
        if n is None:
            return
        s = self.scope
        if s.kind is MODULE or self.is_global(n):
            if self.sink is None:
                self.mutate_top(n)
            elif not self.is_module(n):
                self.sink.reads.add(n)
                self.sink.mutates.add(n)
        elif s.summary is not None and s.summary is self.sink and n in s.params:
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

    # -- hooks for nbsteps' rules (nbsteps.analysis.CellWalker) ------------------
    def on_call(self, node: ast.Call, used: bool) -> bool:
        """Before a call is visited; True when the hook handled it all."""
        return False

    def after_call(self, node: ast.Call, used: bool) -> None:
        """After the call's function and arguments were visited."""

    def on_changed(self, node) -> None:
        """An attribute or item of *node* was assigned or deleted."""
        self.mutate(root_name(node))

    def on_load(self, path: str) -> None:
        """A module's attribute (dotted path) was referenced."""

    def on_import_star(self, module: str, level: int) -> list:
        return []

    # -- expressions -------------------------------------------------------------
    def target(self, t) -> None:
        tt = type(t)
        if tt is ast.Name:
            self.store(t.id)
        elif tt is ast.Tuple or tt is ast.List:
            for e in t.elts:
                self.target(e)
        elif tt is ast.Starred:
            self.target(t.value)
        else:  # an attribute or item: reads the container, changes it
            self.visit(t.value)
            if tt is ast.Subscript:
                self.visit(t.slice)
            self.on_changed(t)

    def visit_Name(self, node) -> None:
        ctx, n = type(node.ctx), node.id
        if ctx is ast.Load:
            self.load(n)
            if n in self.aliases or n in self.CONVENTIONS:
                p = self.path(node)
                if p:
                    self.on_load(p)
        elif ctx is ast.Store:
            self.store(n)
        else:
            self.delete(n)

    def visit_Attribute(self, node) -> None:
        if type(node.ctx) is not ast.Load:
            return self.target(node)  # a store, or a del: both change the container
        root = node.value
        while type(root) is ast.Attribute:
            root = root.value
        if type(root) is ast.Name:
            p = self.path(node)
            if p:
                self.on_load(p)
        self.visit(root)

    def visit_Subscript(self, node) -> None:
        if type(node.ctx) is not ast.Load:
            return self.target(node)
        self.visit(node.value)
        self.visit(node.slice)

    def visit_Call(self, node, used: bool = True) -> None:
        if not self.on_call(node, used):
            self.visit(node.func)
            self.visit_all(node.args)
            self.visit_all(k.value for k in node.keywords)
            self.after_call(node, used)

    def visit_NamedExpr(self, node) -> None:
        self.visit(node.value)
        s = self.scope
        while s.kind is COMP:  # binds in the enclosing function or the cell
            s = s.parent
        saved, self.scope = self.scope, s
        self.store(node.target.id)
        self.scope = saved

    def visit_Lambda(self, node) -> None:
        self.visit_all(arg_exprs(node.args))
        names, glob, nonloc = collect([node.body])
        self.enter(Scope(FUNCTION, self.scope, names | set(arg_names(node.args)), glob, nonloc), [node.body])

    def visit_comprehension_node(self, node) -> None:
        gens = node.generators
        self.visit(gens[0].iter)  # evaluated in the enclosing scope
        local = set().union(*(collect([g.target])[0] for g in gens))
        saved, self.scope = self.scope, Scope(COMP, self.scope, local)
        try:
            for i, g in enumerate(gens):
                if i:
                    self.visit(g.iter)
                self.target(g.target)
                self.visit_all(g.ifs)
            self.visit_all([node.key, node.value] if type(node) is ast.DictComp else [node.elt])
        finally:
            self.scope = saved

    # -- statements ----------------------------------------------------------------
    def visit_Expr(self, node) -> None:
        value = node.value
        if type(value) is ast.Await:
            value = value.value
        if type(value) is ast.Call:  # its result is not used (or only shown)
            self.visit_Call(value, used=False)
        else:
            self.visit(value)

    def visit_FunctionDef(self, node) -> None:
        self.visit_all(node.decorator_list)
        self.visit_all(arg_exprs(node.args))
        if node.returns is not None:
            self.visit(node.returns)
        params = arg_names(node.args)
        fresh = self.sink is None and self.defsink is None
        summary = Summary(params) if fresh else (self.sink or self.defsink)
        names, glob, nonloc = collect(node.body)
        scope = Scope(FUNCTION, self.scope, (names | set(params)) - glob - nonloc, glob, nonloc,
                      params if fresh else (), summary)
        saved = self.sink, self.defsink
        self.sink, self.defsink = summary, None
        try:
            self.enter(scope, node.body)
        finally:
            self.sink, self.defsink = saved
        self.store(node.name, summary if fresh else None)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node) -> None:
        self.visit_all(node.decorator_list + node.bases + [k.value for k in node.keywords])
        summary = Summary() if self.sink is None and self.defsink is None else None
        names, glob, nonloc = collect(node.body)
        saved = self.defsink
        self.defsink = summary or saved
        try:
            self.enter(Scope(CLASS, self.scope, names - glob - nonloc, glob, nonloc), node.body)
        finally:
            self.defsink = saved
        self.store(node.name, summary)

    def visit_Assign(self, node) -> None:
        self.visit(node.value)
        for t in node.targets:
            self.target(t)

    def visit_AugAssign(self, node) -> None:
        self.visit(node.value)
        t = node.target
        if type(t) is ast.Name:
            self.load(t.id)
            self.mutate(t.id)
            self.store(t.id)
        else:
            self.target(t)

    def visit_AnnAssign(self, node) -> None:
        if self.scope.kind is not FUNCTION:  # evaluated in modules and class bodies only
            self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self.target(node.target)
        elif type(node.target) is not ast.Name:
            self.visit(node.target.value)

    def visit_For(self, node) -> None:
        self.visit(node.iter)
        self.target(node.target)
        self.visit_all(node.body + node.orelse)

    visit_AsyncFor = visit_For

    def visit_ExceptHandler(self, node) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.store(node.name)
        self.visit_all(node.body)
        if node.name:
            self.delete(node.name, implicit=True)  # Python deletes it when the handler ends

    def visit_Import(self, node) -> None:
        for a in node.names:
            name = a.asname or a.name.split(".")[0]
            self.store(name)
            self._alias(name, a.name if a.asname else name)

    def visit_ImportFrom(self, node) -> None:
        mod = node.module or ""
        if mod == "__future__":
            return
        for a in node.names:
            names = self.on_import_star(mod, node.level) if a.name == "*" else [a.name]
            for name in names:
                bound = name if a.name == "*" else (a.asname or name)
                self.store(bound)
                self._alias(bound, None if node.level else f"{mod}.{name}")

    def _alias(self, name: str, path: str | None) -> None:
        s = self.scope
        if path is None:
            return
        if s.kind is MODULE or name in s.globals:
            if self.sink is None:
                self.aliases[name] = path
        else:
            s.aliases[name] = path

    def visit_MatchAs(self, node) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        if node.name:
            self.store(node.name)

    def visit_MatchStar(self, node) -> None:
        if node.name:
            self.store(node.name)

    def visit_MatchMapping(self, node) -> None:
        self.visit_all(node.keys + node.patterns)
        if node.rest:
            self.store(node.rest)


def _dispatch_table(cls) -> dict:
    """AST node class -> visit method of *cls* (a subclass may override them)."""
    table = {}
    for name in dir(cls):
        node_type = getattr(ast, name[6:], None) if name.startswith("visit_") else None
        if isinstance(node_type, type):
            table[node_type] = getattr(cls, name)
    table.update({c: cls.visit_comprehension_node for c in _COMPS})
    return table


Walker._dispatch = _dispatch_table(Walker)
