"""Rich view of a :class:`~torchscope._diff.DiffReport`: tensors grouped by module in a tree, modules
whose tensors are all unchanged folded into one line. No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from torchscope._format import format_shape

if TYPE_CHECKING:
    from torchscope._diff import DiffReport, TensorDiff

STYLE = {
    "unchanged": "green",
    "changed": "yellow",
    "missing": "red",
    "added": "cyan",
    "shape_changed": "magenta",
}


@dataclass
class _Node:
    entries: list[TensorDiff] = field(default_factory=list)  # tensors directly in this module
    children: dict[str, _Node] = field(default_factory=dict)

    def all_entries(self) -> list[TensorDiff]:
        out = list(self.entries)
        for child in self.children.values():
            out += child.all_entries()
        return out


def _shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else format_shape(shape)


def _tensor_line(e: TensorDiff, leaf: str) -> Text:
    text = Text.assemble((leaf, "bold" if e.violates else ""), "  ", (e.status, STYLE[e.status]))
    if e.status == "changed":
        if e.nonfinite:
            text.append(f"  {e.cause}", style="red")
        if e.max_abs is not None and e.rel_change is not None and (e.max_abs > 0 or not e.nonfinite):
            text.append(f"  max |Δ| {e.max_abs:.3g}  rel {e.rel_change:.3g}")
        if e.dtype_a != e.dtype_b:
            text.append(f"  {e.dtype_a} → {e.dtype_b}")
    elif e.status == "shape_changed":
        text.append(f"  {_shape(e.shape_a)} → {_shape(e.shape_b)}")
    elif e.status in ("missing", "added"):
        text.append(f"  {_shape(e.shape_a if e.status == 'missing' else e.shape_b)}")
    if e.violates:
        text.append("  ✗ expected frozen", style="bold red")
    elif e.expected_frozen:
        text.append("  ✓ frozen", style="green")
    return text


def _folded(name: str, entries: list[TensorDiff], module_type: str | None) -> Text:
    frozen = sum(e.expected_frozen for e in entries)
    text = Text.assemble((name, "bold"), f"{'  ' + module_type if module_type else ''}  ")
    text.append(f"{len(entries)} unchanged", style="green")
    if frozen:
        text.append(f"  ✓ {frozen} expected frozen", style="green")
    return text


def _module_type(node: _Node) -> str | None:
    types = {e.module_type for e in node.entries if e.module_type}
    return types.pop() if len(types) == 1 else None


def _add(tree: Tree, name: str, node: _Node, expand: bool) -> None:
    entries = node.all_entries()
    if not expand and all(e.status == "unchanged" for e in entries):
        tree.add(_folded(name, entries, _module_type(node)))
        return
    kind = _module_type(node)
    branch = tree.add(Text.assemble((name, "bold"), (f"  {kind}" if kind else "", "dim")))
    for e in node.entries:
        branch.add(_tensor_line(e, e.name.rpartition(".")[2]))
    for child_name, child in node.children.items():
        _add(branch, child_name, child, expand)


def render_diff(report: DiffReport, *, expand: bool = False) -> RenderableType:
    """The tensors of ``report`` as a module tree; ``expand=True`` also lists unchanged tensors."""
    root = _Node()
    for e in report.entries:
        node = root
        for part in e.name.split(".")[:-1]:
            node = node.children.setdefault(part, _Node())
        node.entries.append(e)
    title = f"{report.a} → {report.b}" + (f"  ({report.arch})" if report.arch else "")
    tree = Tree(Text(title, style="bold"))
    for e in root.entries:
        tree.add(_tensor_line(e, e.name))
    for name, child in root.children.items():
        _add(tree, name, child, expand)
    counts = report.counts
    summary = Text("  ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in STYLE))
    lines: list[RenderableType] = [tree, summary]
    odd = [e for e in report.entries if e.nonfinite and e.nonfinite != (("bits_only", e.nonfinite[0][1]),)]
    if odd:
        names = ", ".join(e.name for e in odd[:5]) + (" ..." if len(odd) > 5 else "")
        lines.append(Text(f"{len(odd)} tensor(s) changed in NaN or inf values: {names}", style="red"))
    if report.not_in_arch:
        lines.append(
            Text(
                f"{len(report.not_in_arch)} tensor(s) not in {report.arch}: "
                + ", ".join(report.not_in_arch[:5]),
                style="yellow",
            )
        )
    if report.expect_frozen:
        bad = report.violations
        if bad:
            lines.append(
                Text(
                    f"✗ {len(bad)} expected-frozen tensor(s) changed: "
                    + ", ".join(e.name for e in bad[:5])
                    + (" ..." if len(bad) > 5 else ""),
                    style="bold red",
                )
            )
        else:
            n = sum(e.expected_frozen for e in report.entries)
            lines.append(Text(f"✓ all {n} expected-frozen tensors unchanged", style="bold green"))
    return Group(*lines)
