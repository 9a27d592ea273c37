"""Render an :class:`~torchscope._record.ActivationReport`: one row per module call, flagged rows
highlighted, then the list of flags. No torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from torchscope._format import format_shape
from torchscope.render._charts import bars
from torchscope.render._fit import fitted

if TYPE_CHECKING:
    from torchscope._record import ActivationCall, ActivationReport

STD_BAR_WIDTH = 8

FLAG_STYLE = {
    "nan": "bold red",
    "inf": "bold red",
    "grad_nan": "bold red",
    "grad_inf": "bold red",
    "exploding": "red",
}


def fmt_value(v: float | None) -> str:
    """Three significant digits; ``-`` for None.

    >>> fmt_value(0.000123456), fmt_value(1234.5), fmt_value(None), fmt_value(0.0)
    ('0.000123', '1.23e+03', '-', '0')
    """
    if v is None:
        return "-"
    return f"{v:.3g}"


def _label(c: ActivationCall) -> str:
    out = "" if c.output == "output" else c.output.removeprefix("output")
    return f"{c.module}{out}" + (f" #{c.call + 1}" if c.call else "")


def render_activations(
    data: ActivationReport, *, forward: int | None = None, std_bar: bool | None = False
) -> RenderableType:
    """The activation table (every call of ``forward``, or of all forwards), then the flags.

    ``std_bar=True`` adds a log-scale bar of each output's std beside the Std column, so that
    exploding or vanishing depths stand out; ``None`` adds it only when it fits the console width.
    """
    table = _table(data, forward, std_bar is not False, optional_bar=std_bar is None)
    return _with_flags(data, forward, table)


def _table(data: ActivationReport, forward: int | None, std_bar: bool, *, optional_bar: bool = False) -> RenderableType:
    several = data.forwards > 1 and forward is None
    shown = [c for c in data.calls if forward is None or c.forward == forward]
    # NaN/Inf get a column only when there are some (the closing line says when there are none):
    # the table has to fit 80 columns
    nonfinite = any(c.stats is not None and (c.stats.nan_count or c.stats.inf_count) for c in shown)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    if several:
        table.add_column("Fwd", justify="right")
    table.add_column("Module", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    table.add_column("Shape", no_wrap=True)
    for col in ("Mean", "Std", "Min", "Max", "Zeros"):
        table.add_column(col, justify="right", no_wrap=True)
        if col == "Std" and std_bar:
            table.add_column("", no_wrap=True, style="blue")
    std_bars = bars([None if c.stats is None else c.stats.std for c in shown], width=STD_BAR_WIDTH, log=True)
    if nonfinite:
        table.add_column("NaN/Inf", justify="right", no_wrap=True)
    if data.grads:
        table.add_column("Grad std", justify="right", no_wrap=True)
    if data.timing:
        table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("Flags", overflow="fold")
    for c, std_cell in zip(shown, std_bars, strict=True):
        s = c.stats
        cells = [str(c.forward)] if several else []
        cells += [_label(c), c.type, format_shape(c.shape)]
        if s is None:
            cells += ["-"] * ((6 if nonfinite else 5) + std_bar)
        else:
            cells += [fmt_value(s.mean), fmt_value(s.std)] + ([std_cell] if std_bar else [])
            cells += [
                fmt_value(s.min),
                fmt_value(s.max),
                f"{s.zero_fraction:.0%}",
            ]
            if nonfinite:
                cells.append(f"{s.nan_count}/{s.inf_count}" if s.nan_count or s.inf_count else "-")
        if data.grads:
            cells.append(fmt_value(None if c.grad is None else c.grad.std))
        if data.timing:
            cells.append("-" if c.time_ms is None else f"{c.time_ms:.2f}")
        cells.append(", ".join(c.flags))
        style = None
        if c.flags:
            style = next((FLAG_STYLE[f] for f in c.flags if f in FLAG_STYLE), "yellow")
        table.add_row(*cells, style=style)
    return fitted(table, drop=_DROP_FIRST, wrap=("Flags",), optional=("",) if optional_bar else ())


# narrow consoles leave these out, in this order: the table keeps the module, its shape and std
_DROP_FIRST = ("", "ms", "Grad std", "Min", "Max", "Mean", "Type", "Zeros", "NaN/Inf", "Fwd")


def _with_flags(data: ActivationReport, forward: int | None, table: RenderableType) -> RenderableType:
    several = data.forwards > 1 and forward is None
    parts: list[RenderableType] = [table]
    head = f"{len(data.calls)} recorded outputs over {data.forwards} forward pass{'es' if data.forwards != 1 else ''}"
    parts.append(Text(head))
    if data.checked == 0:
        parts.append(Text(f"not checked: {data.why_unchecked()}", style="bold red"))
        return Group(*parts)
    unchecked = len(data.calls) - data.checked
    if unchecked:
        parts.append(Text(f"{unchecked} of them without values (integer or meta outputs) not checked", style="dim"))
    if data.flags:
        lines = [
            f"{f.kind}: {f.module}" + (f" (forward {f.forward})" if several else "") + f" - {f.detail}"
            for f in data.flags
        ]
        parts.append(Text("\n".join(lines), style="yellow"))
    else:
        parts.append(
            Text("no flags: no NaN/Inf, no dead ReLU units, no exploding or vanishing std", style="green")
        )
    return Group(*parts)
