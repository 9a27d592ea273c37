"""Render a :class:`~torchscope._tree.ModuleTree` as a Rich table drawn as a tree, with totals.

Only display options live here (depth, grep, trainable/frozen filters, collapsing of repeated
blocks); the data is collected once by ``torchscope.tree``. No torch import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from torchscope._format import format_bytes, format_si
from torchscope._patterns import name_matches
from torchscope.errors import PatternError, TorchscopeError
from torchscope.render._fit import fitted

if TYPE_CHECKING:
    from torchscope._treedata import AdapterInfo, ModuleEntry, ModuleTree

FREEZE_MARK = {"trainable": "✓", "frozen": "✗", "partial": "partial", "none": ""}
_INDEXED = re.compile(r"^(.*?)(\d+)$")


def human_count(n: int) -> str:
    """A parameter count as Lightning prints it (the short form of :func:`~torchscope._format.format_si`).

    >>> human_count(999), human_count(11_689_512), human_count(633_470_440), human_count(1_234)
    ('999', '11.7 M', '633 M', '1.2 K')
    """
    return format_si(n, decimals=None, giga="B")


def check_display_options(
    depth: int | None = None, trainable_only: bool = False, frozen_only: bool = False
) -> None:
    """Reject display options that cannot work, before any model is loaded.

    >>> check_display_options(depth=-1)
    Traceback (most recent call last):
    torchscope.errors.TorchscopeError: depth=-1 must be >= 0 (0 shows only the model itself)
    """
    if depth is not None and depth < 0:
        raise TorchscopeError(f"depth={depth} must be >= 0 (0 shows only the model itself)")
    if trainable_only and frozen_only:
        raise TorchscopeError("--trainable-only and --frozen-only exclude each other; pick one")


@dataclass(frozen=True)
class Row:
    """One displayed line: a module, or a run of identical sibling blocks collapsed into one."""

    entry: ModuleEntry
    label: str
    count: int
    params: int


def _parent_name(name: str) -> str | None:
    if not name:
        return None
    return name.rpartition(".")[0]


def _grep_matches(entry: ModuleEntry, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return name_matches(entry.name, pattern) or fnmatchcase(entry.type, pattern)
    needle = pattern.lower()
    return needle in entry.name.lower() or needle in entry.type.lower()


def _visible(
    entries: Sequence[ModuleEntry],
    depth: int | None,
    grep: str | None,
    trainable_only: bool,
    frozen_only: bool,
) -> list[ModuleEntry]:
    keep = list(entries)
    if depth is not None:
        keep = [e for e in keep if e.depth <= depth]
    if trainable_only:
        keep = [e for e in keep if e.freeze in ("trainable", "partial")]
    if frozen_only:
        keep = [e for e in keep if e.freeze in ("frozen", "partial")]
    if grep:
        hits = [e for e in keep if _grep_matches(e, grep)]
        if not hits:
            raise PatternError(
                f"--grep {grep!r} matches no module name or type; list them with `torchscope tree`"
            )
        wanted: set[str] = set()
        for e in hits:
            name: str | None = e.name
            while name is not None:
                wanted.add(name)
                name = _parent_name(name)
        keep = [e for e in keep if e.name in wanted]
    return keep


def _children(entries: Sequence[ModuleEntry]) -> dict[str | None, list[ModuleEntry]]:
    names = {e.name for e in entries}
    out: dict[str | None, list[ModuleEntry]] = {}
    for e in entries:
        parent = _parent_name(e.name)
        # a filtered-out parent (depth/grep keep ancestors, so only the root can lack one)
        while parent is not None and parent not in names:
            parent = _parent_name(parent)
        out.setdefault(parent, []).append(e)
    return out


def _runs(siblings: list[ModuleEntry], expand: bool) -> list[list[ModuleEntry]]:
    """Group consecutive siblings named prefix0, prefix1, ... with identical structure."""
    if expand:
        return [[s] for s in siblings]
    runs: list[list[ModuleEntry]] = []
    for s in siblings:
        if runs:
            last = runs[-1][-1]
            a = _INDEXED.match(last.name.rpartition(".")[2])
            b = _INDEXED.match(s.name.rpartition(".")[2])
            if (
                a
                and b
                and a.group(1) == b.group(1)
                and int(b.group(2)) == int(a.group(2)) + 1
                and s.signature == last.signature
                and not s.aliases
                and not last.aliases
            ):
                runs[-1].append(s)
                continue
        runs.append([s])
    return runs


def _rows(entries: list[ModuleEntry], expand: bool) -> list[tuple[str, Row]]:
    children = _children(entries)
    out: list[tuple[str, Row]] = []

    def visit(entry: ModuleEntry, run: list[ModuleEntry], parent: str, guide: str, child_prefix: str) -> None:
        # names relative to the row above: the tree guides already show the path
        label = entry.name[len(parent) + 1 :] if parent else entry.name or "(model)"
        if len(run) > 1:
            last = run[-1].name.rpartition(".")[2]
            index = _INDEXED.match(last)
            label = f"{label}-{index.group(2) if index else last}"
            out.append((guide, Row(entry, label, len(run), sum(e.params for e in run))))
            return  # the blocks are identical: their insides are shown by --expand
        out.append((guide, Row(entry, label, 1, entry.params)))
        runs = _runs(children.get(entry.name, []), expand)
        for i, sub in enumerate(runs):
            is_last = i == len(runs) - 1
            visit(
                sub[0],
                sub,
                entry.name,
                child_prefix + ("└── " if is_last else "├── "),
                child_prefix + ("    " if is_last else "│   "),
            )

    for top in _runs(children.get(None, []), expand):
        visit(top[0], top, "", "", "")
    return out


def _hooks_text(entry: ModuleEntry) -> str:
    h = entry.hooks
    parts = [
        f"{n} {label}"
        for n, label in (
            (h.forward, "fwd"),
            (h.forward_pre, "pre"),
            (h.backward, "bwd"),
            (h.state_dict, "sd"),
            (h.load_state_dict, "load"),
            (h.tensor, "tensor"),
        )
        if n
    ]
    return ", ".join(parts)


def render_tree(
    data: ModuleTree,
    *,
    depth: int | None = None,
    grep: str | None = None,
    trainable_only: bool = False,
    frozen_only: bool = False,
    expand: bool = False,
) -> RenderableType:
    """The module tree as a table (name, type, params, trainable, mode) with a footer of totals.

    Runs of identical sibling blocks collapse to one row (``layers.0-11  EncoderBlock ×12``)
    unless ``expand``.

    >>> import torch, torchscope
    >>> from rich.console import Console
    >>> data = torchscope.tree(torch.nn.Sequential(torch.nn.Linear(2, 3)))
    >>> Console(width=60, color_system=None).print(render_tree(data, depth=0))  # doctest: +NORMALIZE_WHITESPACE
    Name      Type         Params   Trainable   Mode
    ─────────────────────────────────────────────────
    (model)   Sequential        9       ✓       train
    Trainable params:                  9
    Non-trainable params:              0
    Total params:                      9
    Total estimated model params size: 36 B
    Modules in train mode:             2
    Modules in eval mode:              0
    Devices:                           cpu
    """
    check_display_options(depth, trainable_only, frozen_only)
    entries = _visible(data.modules, depth, grep, trainable_only, frozen_only)
    rows = _rows(entries, expand)
    show_hooks = any(r.entry.hooks.total for _, r in rows)

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=None)
    table.add_column("Name", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    table.add_column("Params", justify="right", no_wrap=True)
    table.add_column("Trainable", justify="center", no_wrap=True)
    table.add_column("Mode", no_wrap=True)
    if show_hooks:
        table.add_column("Hooks", no_wrap=True)
    for guide, row in rows:
        e = row.entry
        name = Text(guide, style="dim")
        name.append(row.label, style="bold" if e.depth == 0 else "")
        if e.aliases:
            name.append(f" (also: {', '.join(e.aliases)})", style="dim")
        type_text = e.type if row.count == 1 else f"{e.type} ×{row.count}"
        mark_style = {"trainable": "green", "frozen": "red", "partial": "yellow"}.get(e.freeze, "")
        cells: list[RenderableType] = [
            name,
            type_text,
            human_count(row.params),
            Text(FREEZE_MARK[e.freeze], style=mark_style),
            Text("train" if e.training else "eval", style="" if e.training else "cyan"),
        ]
        if show_hooks:
            cells.append(_hooks_text(e))
        table.add_row(*cells)
    # narrow consoles leave these out, in this order: the rows keep the name, its type and params
    fit = fitted(table, drop=("Hooks", "Mode", "Trainable"))
    return Group(fit, _footer(data), *_warnings(data))


def _footer(data: ModuleTree) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Trainable params:", human_count(data.trainable_params))
    grid.add_row("Non-trainable params:", human_count(data.frozen_params))
    grid.add_row("Total params:", human_count(data.total_params))
    grid.add_row("Total estimated model params size:", format_bytes(data.total_param_bytes))
    grid.add_row("Modules in train mode:", str(data.modules_in_train_mode))
    grid.add_row("Modules in eval mode:", str(data.modules_in_eval_mode))
    if data.total_buffers:
        sizes = ", ".join(f"{dtype} {format_bytes(b)}" for dtype, b in data.buffer_bytes)
        grid.add_row("Buffers:", f"{human_count(data.total_buffers)} ({sizes})")
    if len(data.param_bytes) > 1:
        grid.add_row("Param dtypes:", ", ".join(f"{dtype} {format_bytes(b)}" for dtype, b in data.param_bytes))
    if data.devices:
        grid.add_row("Devices:", ", ".join(data.devices))
    if data.wrappers:
        grid.add_row("Wrapped by:", " > ".join(data.wrappers))
    for group in data.tied[:5]:
        grid.add_row("Tied:", " = ".join(group))
    if len(data.tied) > 5:
        grid.add_row("", f"and {len(data.tied) - 5} more tied groups (see --json)")
    if data.global_hooks:
        grid.add_row("Global module hooks:", str(data.global_hooks))
    for adapter in data.adapters:
        grid.add_row("Adapter:", _adapter_text(adapter))
    return grid


def _adapter_text(a: AdapterInfo) -> str:
    """``default: LORA r=8, alpha=16 on q_proj, v_proj (44 modules); ...; 4.2 M params, all trainable``."""
    settings = ", ".join(
        part
        for part in (
            f"r={a.r}" if a.r is not None else "",
            f"alpha={a.alpha:g}" if a.alpha is not None else "",
            "per-module ranks" if a.rank_pattern else "",
        )
        if part
    )
    text = f"{a.name}: {a.kind}" + (f" {settings}" if settings else "")
    text += f" on {', '.join(a.targets) or 'no target names'} ({len(a.modules)} modules)"
    if a.modules_to_save:
        # peft wraps them under base_model.model.; the model's own names read better
        names = [n.removeprefix("base_model.model.") for n in a.modules_to_save]
        text += f"; full copies trained: {', '.join(names)}"
    trained = "all trainable" if a.trainable_params == a.params else f"{human_count(a.trainable_params)} trainable"
    text += f"; {human_count(a.params)} params, {trained}"
    return text if a.active else text + " (inactive)"


_GROUPED = {
    "norm_stats_drift": "norm layers have frozen params but are in train mode: their running stats still "
    "change; call .eval() on them to freeze them too",
    "eval_in_train": "modules are in eval mode inside a model in train mode",
    "lazy_params": "modules have uninitialized lazy parameters, counted as 0 until their first forward pass",
}


def _warnings(data: ModuleTree) -> list[Text]:
    """One line per warning; more than three of a kind share one line (all are in --json)."""
    by_kind: dict[str, list[str]] = {}
    for w in data.warnings:
        by_kind.setdefault(w.kind, []).append(w.message)
    lines: list[Text] = []
    for kind, messages in by_kind.items():
        if len(messages) <= 3 or kind not in _GROUPED:
            lines.extend(Text(f"warning: {m}", style="yellow") for m in messages)
            continue
        names = [w.module for w in data.warnings if w.kind == kind]
        shown = ", ".join(names[:3])
        lines.append(
            Text(
                f"warning: {len(names)} {_GROUPED[kind]} ({shown} and {len(names) - 3} more)", style="yellow"
            )
        )
    return lines
