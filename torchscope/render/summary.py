"""Render a :class:`~torchscope._summary.Summary`: one row per module call, shapes, params, MACs.

Display options (depth, columns, column width, row settings, whether to show uncounted ops) live
here; the data is collected once by ``torchscope.summary`` (torchinfo's display keywords travel with
it as defaults). Shapes wrap only between dimensions and counts never wrap. No torch import.
"""

from __future__ import annotations

import io
import math
from types import EllipsisType
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from torchscope._format import format_mb, format_shape, format_si, si_scale
from torchscope.errors import TorchscopeError
from torchscope.render._fit import fitted
from torchscope.render.tree import human_count

if TYPE_CHECKING:
    from torchscope._summary import ModuleRow, Summary, TensorSpec

# torchinfo's column names -> our headers
HEADERS = {
    "input_size": "Input shape",
    "output_size": "Output shape",
    "num_params": "Params",
    "params_percent": "Params %",
    "kernel_size": "Kernel",
    "groups": "Groups",
    "mult_adds": "Mult-adds",
    "trainable": "Trainable",
}
_NUMERIC = {"num_params", "params_percent", "groups", "mult_adds"}


def fmt_macs(n: float) -> str:
    """A multiply-accumulate count with an SI unit.

    >>> fmt_macs(4_089_184_256), fmt_macs(1_500), fmt_macs(12)
    ('4.09 G', '1.50 K', '12')
    """
    return format_si(n)


def fmt_shapes(specs: tuple[TensorSpec, ...]) -> str:
    """Every tensor's shape, one per line: ``[1, 1000]``; ``-`` when there is none.

    Names are added when there are several (``logits: [1, 10]``) so multi-output models read well.
    """
    if not specs:
        return "-"
    if len(specs) == 1:
        return format_shape(specs[0].shape)
    return "\n".join(
        f"{s.name.removeprefix('output').removeprefix('input').lstrip('.') or '-'}: {format_shape(s.shape)}"
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


def fmt_total(data: Summary) -> str:
    """``4.09 G`` or ``>= 1.02 M`` when ops with arithmetic ran without a formula."""
    total = data.total_mult_adds or 0
    return (">= " if data.mult_adds_lower_bound else "") + fmt_macs(total)


def _label(row: ModuleRow, model: str, index: str | None) -> str:
    # the last name component, indented by depth (the full name is in the JSON): deep models
    # stay readable in 80 columns
    call = f" #{row.call + 1}" if row.call else ""
    suffix = f": {index}" if index else ""
    if not row.name:
        return f"{model}{call}{suffix}"
    return f"{'  ' * row.depth}{row.name.rsplit('.', 1)[-1]} ({row.type}){call}{suffix}"


def _row_macs(row: ModuleRow) -> str:
    if row.mult_adds is None:
        return "-"
    if row.uncounted_ops:
        return f">= {fmt_macs(row.mult_adds)}"
    return fmt_macs(row.mult_adds) if row.mult_adds else "-"


def _trainable(row: ModuleRow) -> str:
    if row.params == 0:
        return "-"
    if row.trainable_params == row.params:
        return "True"
    return "False" if row.trainable_params == 0 else "Partial"


def _cell(column: str, row: ModuleRow, data: Summary) -> str:
    if row.opaque and column in ("input_size", "output_size", "mult_adds"):
        return "?"  # inside TorchScript: unknown, not zero
    if column == "input_size":
        return fmt_shapes(row.inputs)
    if column == "output_size":
        return fmt_shapes(row.outputs) if row.completed else "(failed)"
    if column == "num_params":
        return human_count(row.params) if row.call == 0 else "(shared)"
    if column == "params_percent":
        return f"{100 * row.params / data.total_params:.2f}%" if data.total_params and row.call == 0 else "-"
    if column == "kernel_size":
        return format_shape(row.kernel_size) if row.kernel_size else "-"
    if column == "groups":
        return str(row.groups) if row.groups is not None else "-"
    if column == "mult_adds":
        return _row_macs(row)
    return _trainable(row)


def _depth_indices(rows: tuple[ModuleRow, ...]) -> list[str]:
    # torchinfo's "depth-index": the row's depth and its position among the rows of that depth
    # under the same parent
    counters: list[int] = []
    out = []
    for row in rows:
        del counters[row.depth + 1 :]
        while len(counters) <= row.depth:
            counters.append(0)
        counters[row.depth] += 1
        out.append(f"{row.depth}-{counters[row.depth]}" if row.depth else "")
    return out


def render_summary(
    data: Summary,
    *,
    depth: int | EllipsisType | None = ...,
    show_uncounted: bool = False,
    columns: tuple[str, ...] | EllipsisType | None = ...,
    col_width: int | EllipsisType | None = ...,
    row_settings: tuple[str, ...] | EllipsisType = ...,
    weights: bool | EllipsisType = ...,
) -> RenderableType:
    """The summary table, then totals and notes. ``depth`` limits the rows (0: the model only).

    Options not given come from ``data.display`` (torchinfo's keywords given to ``summary``).
    ``columns`` are torchinfo's column names (see :data:`HEADERS`). A row whose count may be low
    (an op with arithmetic but no formula ran in it) shows ``>=``; ``show_uncounted`` adds a column
    naming those ops. ``weights`` (torchinfo's ``verbose=2``) adds a row for each module's own
    weight and bias under it, with its shape and count.
    """
    display = data.display
    if weights is ...:
        weights = display is not None and display.verbose == 2
    if depth is ...:
        depth = display.depth if display is not None else None
    if columns is ...:
        columns = display.columns if display is not None else None
    if col_width is ...:
        col_width = display.col_width if display is not None else None
    if row_settings is ...:
        row_settings = display.row_settings if display is not None else ()
    if depth is not None and depth < 0:
        raise TorchscopeError(f"--depth {depth} must be >= 0")
    if columns is None:
        columns = (
            ("input_size", "output_size", "num_params", "mult_adds") if data.forward_ran else ("num_params",)
        )
    ascii_only = "ascii_only" in row_settings
    shown = [
        (r, i)
        for r, i in zip(data.rows, _depth_indices(data.rows), strict=True)
        if (depth is None or r.depth <= depth) and not ("hide_recursive_layers" in row_settings and r.call)
    ]
    index_on = "depth" in row_settings
    headers = ["Layer (type)", *(HEADERS[c] for c in columns), *(["Not counted"] if show_uncounted else [])]
    body: list[list[str]] = []
    styles: list[str | None] = []
    for row, index in shown:
        body.append(
            [
                _label(row, data.model, index if index_on else None),
                *(_cell(c, row, data) for c in columns),
                *([_ops(row.uncounted_ops)] if show_uncounted else []),
            ]
        )
        styles.append(None if row.completed else "bold red")
        if weights and row.call == 0:
            for k, w in enumerate(row.weights):
                branch = "└─" if k == len(row.weights) - 1 else "├─"
                label = f"{'  ' * (row.depth + 1)}{branch}{w.name}: {format_shape(w.shape)}"
                count = f"{math.prod(w.shape):,}"
                body.append([label, *(count if c == "num_params" else "" for c in columns)])
                body[-1] += [""] if show_uncounted else []
                styles.append("dim")
    numeric = [False, *(c in _NUMERIC for c in columns), *([False] if show_uncounted else [])]
    table = _FittedTable(
        headers, body, numeric, styles, box.ASCII if ascii_only else box.SIMPLE_HEAD, col_width
    )
    lines = torchinfo_totals(data)
    lines.append(f"Frozen params: {data.total_params - data.trainable_params:,}")
    if data.forward_ran:
        bound = ">= " if data.mult_adds_lower_bound else ""
        lines.append(f"FLOPs: {bound}{fmt_macs(data.total_flops or 0)} (mult-adds: {fmt_total(data)}), mode: {data.mode}")
    if data.forward_ran:
        lines += [
            f"Input: {fmt_shapes(data.inputs).replace(chr(10), '; ')}",
            f"Output ({data.output_type}): {fmt_shapes(data.outputs).replace(chr(10), '; ')}",
        ]
    if data.uncounted_ops:
        lines.append(
            f">=: a lower bound; ops with arithmetic but no FLOP formula ran: {_ops(data.uncounted_ops)}"
            " (per row with --uncounted and in --json)"
        )
    if data.not_called:
        shown_names = ", ".join(data.not_called[:5])
        more = f" and {len(data.not_called) - 5} more (all in --json)" if len(data.not_called) > 5 else ""
        lines.append(f"Modules never called: {shown_names}{more}")
    parts: list[RenderableType] = [table, Text("\n".join(lines))]
    for note in data.notes:
        if not note.startswith("mult-adds is a lower bound"):  # said above, with the short names
            parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


def _readable(num: int) -> tuple[str, float]:
    # torchinfo's ModelStatistics.to_readable with Units.AUTO: M, G or T
    return si_scale(num, lowest="M", highest="T")


def _number(value: float) -> str:
    # torchinfo's format_output_num: a whole number without decimals, else two
    return f"{int(value):,d}" if float(value).is_integer() else f"{value:,.2f}"


def torchinfo_totals(data: Summary) -> list[str]:
    """The totals in torchinfo's words and formats, so that what reads torchinfo's output reads ours.

    torchinfo 1.8.0 on Python 3.11+ prints ``Total mult-adds (Units.GIGABYTES)``; we print the unit
    it means (``(G)``). A lower bound says so after the number.

    >>> from types import SimpleNamespace as S
    >>> d = S(total_params=11_689_512, trainable_params=11_689_512, forward_ran=True,
    ...       total_mult_adds=1_814_083_944, mult_adds_lower_bound=False, input_bytes=602_184,
    ...       total_output_bytes=39_746_560, param_bytes=46_758_048)
    >>> for line in torchinfo_totals(d):
    ...     print(line)
    Total params: 11,689,512
    Trainable params: 11,689,512
    Non-trainable params: 0
    Total mult-adds (G): 1.81
    Input size (MB): 0.60
    Forward/backward pass size (MB): 39.75
    Params size (MB): 46.76
    Estimated Total Size (MB): 87.11
    """
    lines = [
        f"Total params: {data.total_params:,}",
        f"Trainable params: {data.trainable_params:,}",
        f"Non-trainable params: {data.total_params - data.trainable_params:,}",
    ]
    if not data.forward_ran:
        return [*lines, f"Params size (MB): {format_mb(data.param_bytes)}"]
    unit, macs = _readable(data.total_mult_adds or 0)
    bound = " (a lower bound)" if data.mult_adds_lower_bound else ""
    total = data.input_bytes + data.total_output_bytes + data.param_bytes
    return [
        *lines,
        f"Total mult-adds ({unit}): {_number(macs)}{bound}",
        f"Input size (MB): {format_mb(data.input_bytes)}",
        f"Forward/backward pass size (MB): {format_mb(data.total_output_bytes)}",
        f"Params size (MB): {format_mb(data.param_bytes)}",
        f"Estimated Total Size (MB): {format_mb(total)}",
    ]


class _FittedTable:
    """The rows as a Rich table whose column widths are chosen for the console's width.

    Rich crops a no-wrap column (cutting counts) and folds a wrapping one inside numbers when it
    runs out of room. Here counts keep their full width, and shapes and names give up room first,
    wrapping at the spaces between dimensions.
    """

    def __init__(
        self, headers: list[str], body: list[list[str]], numeric: list[bool], styles: list[str | None],
        table_box: box.Box, col_width: int | None,
    ) -> None:  # fmt: skip
        self.headers, self.body, self.numeric, self.styles = headers, body, numeric, styles
        self.box, self.col_width = table_box, col_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # every cell whole: a narrow console leaves columns out (said in a footer line), never wraps a shape
        table = Table(box=self.box, show_edge=False, pad_edge=False)
        for k, header in enumerate(self.headers):
            table.add_column(header, justify="right" if self.numeric[k] else "left", min_width=self.col_width)
        for row, style in zip(self.body, self.styles, strict=True):
            table.add_row(*row, style=style)
        yield fitted(table, drop=_SUMMARY_DROP)


# narrow consoles leave these out, in this order: the rows keep the layer, its output and its params
_SUMMARY_DROP = tuple(HEADERS[k] for k in ("kernel_size", "groups", "params_percent", "trainable", "input_size", "mult_adds"))


def summary_text(data: Summary, width: int = 1000) -> str:
    """The rendered summary as plain text (``str(summary)``), at its natural width unless given."""
    # force_jupyter=False: in a notebook Rich would display the table itself instead of writing it here
    console = Console(width=width, color_system=None, record=True, file=io.StringIO(), force_jupyter=False)
    console.print(render_summary(data))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())
