"""Render :class:`~torchscope._stats.ParamStats` and :class:`~torchscope._grads.GradReport`.

No torch import.
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
from torchscope.render.activations import fmt_value
from torchscope.render.tree import human_count

if TYPE_CHECKING:
    from torchscope._grads import GradReport
    from torchscope._stats import ParamStats

GRAD_BAR_WIDTH = 10
GRAD_STYLE = {"nonfinite": "bold red", "exploding": "red", "vanishing": "yellow", "unused": "yellow"}


def render_param_stats(data: ParamStats) -> RenderableType:
    """One row per parameter (tied ones once), then totals and flags."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Parameter")
    table.add_column("Shape")
    table.add_column("Train", justify="center")
    for col in ("Norm", "Mean", "Std", "Min", "Max", "Zeros"):
        table.add_column(col, justify="right")
    table.add_column("Grad")
    table.add_column("Grad/param", justify="right")
    for r in data.rows:
        name = r.name + (f" (= {', '.join(r.aliases)})" if r.aliases else "")
        bad = r.nan_count or r.inf_count or r.grad == "nonfinite"
        table.add_row(
            name,
            format_shape(r.shape),
            "✓" if r.requires_grad else "✗",
            fmt_value(r.norm),
            fmt_value(r.mean),
            fmt_value(r.std),
            fmt_value(r.min),
            fmt_value(r.max),
            "-" if r.zero_fraction is None else f"{r.zero_fraction:.0%}",
            r.grad if r.grad != "ok" else fmt_value(r.grad_norm),
            fmt_value(r.grad_ratio),
            style="bold red" if bad else None,
        )
    lines = [
        f"Params: {human_count(data.total)} ({human_count(data.trainable)} trainable, {human_count(data.frozen)} frozen)",
        f"Global norm: {fmt_value(data.norm)}; grad norm: {fmt_value(data.grad_norm)}",
    ]
    parts: list[RenderableType] = [fitted(table, drop=_STATS_DROP), Text("\n".join(lines))]
    if data.checked == 0:
        parts.append(Text(f"not checked: {data.nothing_checked}", style="bold red"))
    elif data.checked < len(data.rows):
        missing = len(data.rows) - data.checked
        parts.append(Text(f"{missing} of {len(data.rows)} parameters have no values (meta) and are not checked", style="yellow"))
    if data.flags:
        parts.append(Text("\n".join(data.flags), style="bold red"))
    return Group(*parts)


# narrow consoles leave these out, in this order: the table keeps the name, shape, norm and std
_STATS_DROP = ("Grad/param", "Mean", "Min", "Max", "Zeros", "Train", "Grad")
_GRADS_DROP = ("Param norm", "Trainable", "Params", "Ratio")


def render_grads(data: GradReport, *, grad_bar: bool | None = None) -> RenderableType:
    """Per-layer grad norms, then unused parameters and flags.

    ``grad_bar`` draws a log-scale bar beside each grad norm; ``None`` (default) when it fits.
    """
    return _grads_footer(data, _grads_table(data, grad_bar is not False, optional_bar=grad_bar is None))


def _grads_table(data: GradReport, with_bar: bool, *, optional_bar: bool = False) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("Layer (type)")
    table.add_column("Params", justify="right")
    table.add_column("Trainable", justify="right")
    table.add_column("Grad norm", justify="right")
    # Untitled: a log-scale bar of the grad norm beside it, so layers compare at a glance.
    if with_bar:
        table.add_column("", no_wrap=True, style="blue")
    table.add_column("Param norm", justify="right")
    table.add_column("Ratio", justify="right")
    table.add_column("Flag")
    grad_bars = bars([la.grad_norm for la in data.layers], width=GRAD_BAR_WIDTH, log=True)
    for la, grad_bar in zip(data.layers, grad_bars, strict=True):
        table.add_row(
            f"{la.name or data.model} ({la.type})",
            human_count(la.params),
            human_count(la.trainable),
            fmt_value(la.grad_norm),
            *([grad_bar] if with_bar else []),
            fmt_value(la.param_norm),
            fmt_value(la.ratio),
            la.flag or "",
            style=GRAD_STYLE.get(la.flag or ""),
        )
    return fitted(table, drop=_GRADS_DROP, wrap=("Flag",), optional=("",) if optional_bar else ())


def _grads_footer(data: GradReport, table: RenderableType) -> RenderableType:
    lines = [
        f"Loss: {data.loss} = {fmt_value(data.loss_value)} (one {data.mode}-mode step on a random batch)",
        f"Params: {human_count(data.trainable)} trainable, {human_count(data.frozen)} frozen",
    ]
    parts: list[RenderableType] = [table, Text("\n".join(lines))]
    if data.unused:
        parts.append(
            Text(
                f"{len(data.unused)} trainable parameters got no gradient (unused): "
                + ", ".join(data.unused),
                style="yellow",
            )
        )
    parts += [Text(f"note: {caveat}", style="yellow") for caveat in data.caveats]
    if data.checked == 0:
        parts.append(Text(f"not checked: {data.nothing_checked}", style="bold red"))
    elif data.flags:
        parts.append(Text("\n".join(data.flags), style="yellow"))
    elif not data.unused:
        parts.append(
            Text(
                "every trainable parameter got a finite gradient; no vanishing or exploding layer",
                style="green",
            )
        )
    return Group(*parts)
