"""Render a :class:`~torchscope._summary.Summary`: one row per module call, shapes, params, MACs.

Display options (depth, whether to show uncounted ops) live here; the data is collected once by
``torchscope.summary``. No torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from torchscope.errors import TorchscopeError
from torchscope.render.tree import human_count

if TYPE_CHECKING:
    from torchscope._summary import ModuleRow, Summary, TensorSpec


def fmt_macs(n: float) -> str:
    """A multiply-accumulate count with an SI unit.

    >>> fmt_macs(4_089_184_256), fmt_macs(1_500), fmt_macs(12)
    ('4.09 G', '1.50 K', '12')
    """
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def fmt_shapes(specs: tuple[TensorSpec, ...]) -> str:
    """Every tensor's shape, one per line: ``[1,1000]``; ``-`` when there is none.

    Names are added when there are several (``logits: [1,10]``) so multi-output models read well.
    """
    if not specs:
        return "-"
    if len(specs) == 1:
        return _shape(specs[0].shape)
    return "\n".join(
        f"{s.name.removeprefix('output').removeprefix('input').lstrip('.') or '-'}: {_shape(s.shape)}"
        for s in specs
    )


def short_op(op: str) -> str:
    """A readable aten op name: ``aten._native_batch_norm_legit_no_training`` -> ``batch_norm``.

    >>> short_op("aten._native_batch_norm_legit_no_training"), short_op("aten.relu_")
    ('batch_norm', 'relu')
    """
    name = op.removeprefix("aten.").lstrip("_").removeprefix("native_")
    for suffix in ("_legit_no_training", "_legit_functional", "_legit", "_with_indices"):
        name = name.removesuffix(suffix)
    return name.rstrip("_") or op


def _ops(ops: tuple[str, ...]) -> str:
    return ", ".join(dict.fromkeys(short_op(op) for op in ops))


def _label(row: ModuleRow, model: str) -> str:
    # the last name component, indented by depth (the full name is in the JSON): deep models
    # stay readable in 80 columns
    call = f" #{row.call + 1}" if row.call else ""
    if not row.name:
        return f"{model}{call}"
    return f"{'  ' * row.depth}{row.name.rsplit('.', 1)[-1]} ({row.type}){call}"


def render_summary(
    data: Summary, *, depth: int | None = None, show_uncounted: bool = False
) -> RenderableType:
    """The summary table, then totals and notes. ``depth`` limits the rows (0: the model only).

    A row with no counted mult-adds but ops without a FLOP formula shows ``n/c`` (never a silent
    zero); ``show_uncounted`` adds a column naming those ops.
    """
    if depth is not None and depth < 0:
        raise TorchscopeError(f"--depth {depth} must be >= 0")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Layer (type)", no_wrap=True)
    table.add_column("Input shape", overflow="fold")
    table.add_column("Output shape", overflow="fold")
    table.add_column("Params", justify="right", no_wrap=True)
    table.add_column("Mult-adds", justify="right", no_wrap=True)
    if show_uncounted:
        table.add_column("Not counted", overflow="fold")
    for row in data.rows:
        if depth is not None and row.depth > depth:
            continue
        cells = [
            _label(row, data.model),
            fmt_shapes(row.inputs),
            fmt_shapes(row.outputs) if row.completed else "(failed)",
            human_count(row.params) if row.call == 0 else "(shared)",
            fmt_macs(row.mult_adds) if row.mult_adds else ("n/c" if row.uncounted_ops else "-"),
        ]
        if show_uncounted:
            cells.append(_ops(row.uncounted_ops))
        table.add_row(*cells, style=None if row.completed else "bold red")
    lines = [
        f"Params: {human_count(data.total_params)} ({human_count(data.trainable_params)} trainable, "
        f"{human_count(data.total_params - data.trainable_params)} frozen), {data.param_bytes / 2**20:.1f} MiB",
        f"Mult-adds: {fmt_macs(data.total_mult_adds)} (FLOPs: {fmt_macs(data.total_flops)}), mode: {data.mode}",
        f"Input: {fmt_shapes(data.inputs).replace(chr(10), '; ')}",
        f"Output ({data.output_type}): {fmt_shapes(data.outputs).replace(chr(10), '; ')}"
        if data.error is None
        else "Output: none, the forward pass failed",
    ]
    if data.uncounted_ops:
        lines.append("n/c: only ops without a FLOP formula ran there (listed with --uncounted and in --json)")
        lines.append("Ops without a FLOP formula (not counted): " + _ops(data.uncounted_ops))
    if data.not_called:
        shown = ", ".join(data.not_called[:5])
        more = f" and {len(data.not_called) - 5} more (all in --json)" if len(data.not_called) > 5 else ""
        lines.append(f"Modules never called: {shown}{more}")
    parts: list[RenderableType] = [table, Text("\n".join(lines))]
    for note in data.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    if data.error:
        parts.append(Text(data.error, style="bold red"))
    return Group(*parts)
