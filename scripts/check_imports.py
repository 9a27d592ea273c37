"""Check the import graph of the torchscope package: no circles at any level, and imports go downhill.

Reads every ``.py`` file under ``torchscope/`` with :mod:`ast` (nothing is imported), and counts every
``import`` statement wherever it is, function-local ones included, because a function-local import
only hides a circle. Imports under ``if TYPE_CHECKING:`` are left out: they never run.

An edge ``a -> b`` means running ``a`` may import ``b``. ``from pkg import name`` is an edge to
``pkg.name`` when that is a module, else to ``pkg``; importing ``pkg.sub`` also runs ``pkg``'s
``__init__`` (an edge to ``pkg`` unless the importer lives inside it, where ``pkg`` is already
being imported). The root ``torchscope/__init__.py`` re-exports lazily and is never an edge target.

Fails (exit 1, printing each circle and each offending edge with file and line) on

- any circle of modules: a strongly connected component of more than one module, or a module
  importing itself;
- any circle of packages: the same search where each subpackage or top-level module of torchscope
  (``torchscope._check``, ``torchscope._peft``, ``torchscope.render``, ``torchscope._tree``...) is one
  node, so that two packages whose modules import each other without a module circle are still
  caught: what two packages share lives below both. The edges of a module circle are left out of
  this search (that circle is reported once, as a module circle);
- any core -> CLI edge: core is every module outside ``torchscope.cli``; ``torchscope.__main__``
  (``python -m torchscope``) is an entry point, like the ``torchscope`` console script, and belongs
  to the CLI side;
- any core -> render edge: the core (every module outside ``torchscope.cli`` and ``torchscope.render``)
  never imports the renderers. A result reaches its renderer through one documented boundary,
  ``torchscope._display``, which imports ``torchscope.render`` by name at display time
  (``importlib.import_module`` of a string constant; see CONTRIBUTING.md). That display-time import
  is allowed there and nowhere else in the core, and it is not an import-time edge (it runs when a
  result is shown, after both sides are imported), so it is listed, not counted in the circles;
- any torch import reachable from a renderer: ``torchscope.render`` imports no torch, neither itself
  nor through a core module it imports (function-local imports included);
- any private name imported across rooms: ``from torchscope.x import _name`` in any module but
  ``torchscope.x`` itself (a private *module* is a room and may be imported). What two rooms share
  is a public name in a private module.

On success prints one summary line. ``--root DIR`` checks another tree (the tests use it).

    python scripts/check_imports.py
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "torchscope"
CLI = f"{PACKAGE}.cli"
RENDER = f"{PACKAGE}.render"
ENTRY_POINTS = frozenset({f"{PACKAGE}.__main__"})
#: The one core module allowed to import the renderers, by name, at display time.
DISPLAY_BOUNDARY = f"{PACKAGE}._display"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    file: str
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/torchscope``."""
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the `else:` of `if TYPE_CHECKING:` does run
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, node.module] if node.module else base)


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments (what a dynamic import may name)."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def dynamic_imports(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(module, line) of every ``import_module(...)``/``__import__(...)`` whose name is a string
    literal or a module-level string constant."""
    constants = _string_constants(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else (func.id if isinstance(func, ast.Name) else "")
        if name not in ("import_module", "__import__"):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            yield arg.value, node.lineno
        elif isinstance(arg, ast.Name) and arg.id in constants:
            yield constants[arg.id], node.lineno


def imports_torch(tree: ast.AST) -> int | None:
    """The line of the first ``import torch``/``from torch ...`` (any depth, not TYPE_CHECKING)."""
    for node in _imports(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if node.__class__ is ast.ImportFrom and node.level:  # type: ignore[attr-defined]
            continue
        if any(n == "torch" or n.startswith("torch.") for n in names):
            return node.lineno
    return None


@dataclass(frozen=True)
class PrivateImport:
    """``from module import name`` where ``name`` is private to ``module`` and ``source`` is another room."""

    source: str
    module: str
    name: str
    file: str
    line: int


def build_graph(root: Path) -> tuple[dict[str, Path], list[Edge]]:
    """The package's modules and the import edges between them."""
    modules, edges, _ = _scan(root)
    return modules, edges


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _scan(root: Path) -> tuple[dict[str, Path], list[Edge], list[PrivateImport]]:
    """The modules, their import edges, and every private name imported across rooms."""
    modules = module_names(root)
    edges: list[Edge] = []
    private: list[PrivateImport] = []
    for name, path in modules.items():
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        is_package = path.name == "__init__.py"
        for node in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(name, is_package, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
                    if _is_private(alias.name) and base in modules and base != name and sub not in modules:
                        private.append(PrivateImport(name, base, alias.name, rel, node.lineno))
            for target in targets:
                for hit in _runs(target, name, modules):
                    edges.append(Edge(name, hit, rel, node.lineno))
    return modules, edges, private


def display_edges(root: Path, modules: dict[str, Path]) -> list[Edge]:
    """Display-time imports of the renderers by name (``importlib.import_module(RENDER)``)."""
    out = []
    for name, path in modules.items():
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for target, line in dynamic_imports(tree):
            if target == RENDER or target.startswith(RENDER + "."):
                out.append(Edge(name, target, rel, line))
    return out


def torch_importers(root: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Module -> line of its torch import, for every module that imports torch anywhere."""
    out = {}
    for name, path in modules.items():
        line = imports_torch(ast.parse(path.read_text(encoding="utf-8")))
        if line is not None:
            out[name] = line
    return out


def _runs(target: str, importer: str, modules: dict[str, Path]) -> Iterator[str]:
    """The package modules that importing ``target`` from ``importer`` executes (as edges)."""
    if target != PACKAGE and not target.startswith(PACKAGE + "."):
        return
    parts = target.split(".")
    for i in range(2, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix not in modules:
            continue
        is_last = i == len(parts)
        # a package the importer is inside of is already being imported: no new code runs
        if not is_last and (importer == prefix or importer.startswith(prefix + ".")):
            continue
        if prefix == importer:
            continue
        yield prefix


def strongly_connected(nodes: list[str], graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = graph.get(node, [])
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def one_cycle(component: list[str], graph: dict[str, list[str]]) -> list[str]:
    """A shortest circle through the component's first module (breadth-first inside the component)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in graph.get(node, []):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start, start]  # unreachable for a real component


def _is_cli(module: str) -> bool:
    return module == CLI or module.startswith(CLI + ".") or module in ENTRY_POINTS


def _is_render(module: str) -> bool:
    return module == RENDER or module.startswith(RENDER + ".")


def _path_to(start: str, goal: set[str], graph: dict[str, list[str]]) -> list[str] | None:
    """A shortest import path from ``start`` to any module of ``goal`` (breadth-first)."""
    previous: dict[str, str] = {}
    frontier, seen = [start], {start}
    while frontier:
        following = []
        for node in frontier:
            if node in goal:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1]
            for nxt in graph.get(node, []):
                if nxt not in seen:
                    seen.add(nxt)
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return None


def package_of(module: str) -> str:
    """The subpackage or top-level module of torchscope that ``module`` belongs to (its package node)."""
    return ".".join(module.split(".")[:2])


def _circles(
    nodes: list[str], edges: list[Edge], kind: str, node_of: Callable[[str], str]
) -> tuple[list[str], dict[str, int], dict[str, list[str]]]:
    """Each circle among ``nodes``, where an edge ``a -> b`` joins ``node_of(a)`` to ``node_of(b)``;
    for each node in a circle, the circle's number; and the graph searched."""
    graph: dict[str, list[str]] = {}
    where: dict[tuple[str, str], Edge] = {}  # the first import statement behind each node edge
    for edge in edges:
        a, b = node_of(edge.source), node_of(edge.target)
        if a == b and kind == "packages":
            continue
        if b not in graph.setdefault(a, []):
            graph[a].append(b)
        where.setdefault((a, b), edge)
    problems = []
    member: dict[str, int] = {}
    for number, component in enumerate(strongly_connected(nodes, graph)):
        member.update(dict.fromkeys(component, number))
        cycle = one_cycle(component, graph)
        steps = []
        for a, b in itertools.pairwise(cycle):
            e = where[(a, b)]
            via = "" if (a, b) == (e.source, e.target) else f"{e.source} -> {e.target}, "
            steps.append(f"    {a} -> {b}  ({via}{e.where()})")
        problems.append(f"import circle of {len(component)} {kind} ({', '.join(component)}):\n" + "\n".join(steps))
    return problems, member, graph


def check(root: Path) -> tuple[list[str], str]:
    """(problems, summary) for the tree at ``root``."""
    modules, edges, private = _scan(root)
    problems, in_circle, graph = _circles(sorted(modules), edges, "modules", lambda m: m)
    # the package graph: one node per subpackage or top-level module; the root re-exports lazily.
    # The edges inside a module circle are left out here: that circle is reported once, above
    packages = sorted({package_of(m) for m in modules if m != PACKAGE})
    lifted = [
        e
        for e in edges
        if e.source != PACKAGE and not (e.source in in_circle and in_circle.get(e.source) == in_circle.get(e.target))
    ]
    problems += _circles(packages, lifted, "packages", package_of)[0]
    # one line per import statement: its deepest CLI module, not also the packages above it
    cli_edges: dict[tuple[str, int], Edge] = {}
    for e in edges:
        if not _is_cli(e.source) and _is_cli(e.target):
            seen = cli_edges.get((e.file, e.line))
            if seen is None or len(e.target) > len(seen.target):
                cli_edges[(e.file, e.line)] = e
    for _, edge in sorted(cli_edges.items()):
        problems.append(f"core module imports the CLI: {edge.source} -> {edge.target}  ({edge.where()})")
    # the core never imports the renderers (statically): results reach them through _display
    render_edges: dict[tuple[str, int], Edge] = {}
    for e in edges:
        if not _is_cli(e.source) and not _is_render(e.source) and _is_render(e.target):
            seen = render_edges.get((e.file, e.line))
            if seen is None or len(e.target) > len(seen.target):
                render_edges[(e.file, e.line)] = e
    for _, edge in sorted(render_edges.items()):
        problems.append(
            f"core module imports the renderers: {edge.source} -> {edge.target}  ({edge.where()}); "
            f"show a result through {DISPLAY_BOUNDARY} instead"
        )
    boundary = display_edges(root, modules)
    for edge in boundary:
        if edge.source != DISPLAY_BOUNDARY and not _is_cli(edge.source) and not _is_render(edge.source):
            problems.append(
                f"core module imports the renderers by name: {edge.source} -> {edge.target}  ({edge.where()}); "
                f"only {DISPLAY_BOUNDARY} may (the one display-time boundary)"
            )
    # renderers import no torch, neither themselves nor through what they import
    torchy = torch_importers(root, modules)
    for module in sorted(m for m in modules if _is_render(m)):
        path = _path_to(module, set(torchy), graph)
        if path is not None:
            chain = " -> ".join(path)
            problems.append(
                f"renderer imports torch: {chain} -> torch  ({modules[path[-1]].relative_to(root).as_posix()}:"
                f"{torchy[path[-1]]})"
            )
    for p in private:
        problems.append(
            f"private name imported across rooms: {p.source} imports {p.module}.{p.name}  ({p.file}:{p.line}); "
            f"make it a public name of {p.module}"
        )
    core = sum(1 for m in modules if not _is_cli(m))
    local = len({(e.source, e.target) for e in edges})
    allowed = ", ".join(f"{e.source} -> {e.target} ({e.where()})" for e in boundary if e.source == DISPLAY_BOUNDARY)
    summary = (
        f"import check: {len(modules)} modules ({core} core, {len(modules) - core} CLI), "
        f"{local} import edges, {len(packages)} packages, no circles (modules or packages), no core -> CLI import, "
        f"no core -> render import (display boundary: {allowed or 'none'}), no torch under render, "
        "no private name across rooms"
    )
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ns = parser.parse_args(argv)
    if not (ns.root / PACKAGE / "__init__.py").is_file():
        print(f"error: {ns.root} has no {PACKAGE}/__init__.py; pass the repository root as --root", file=sys.stderr)
        return 2
    problems, summary = check(ns.root)
    if problems:
        for problem in problems:
            print(problem)
        print(f"import check failed: {len(problems)} problem(s)")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
