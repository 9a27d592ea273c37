"""Render a :class:`~torchscope._memory.schema.MemoryReport`: the peak, a bar chart of what is alive
at it, the per-module table, and the ``--fit`` answer. Reads the report only; no torch."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from torchscope._format import format_bytes, format_shape
from torchscope._memory.schema import KINDS, FitResult, MemoryReport
from torchscope.render._fit import fitted

BAR_WIDTH = 32
_STYLE = {
    "parameters": "cyan",
    "buffers": "blue",
    "gradients": "magenta",
    "optimizer state": "yellow",
    "activations": "green",
    "temporaries": "red",
}


def bar(share: float, width: int = BAR_WIDTH) -> str:
    """A bar of ``share`` (0..1) in eighths of a cell.

    >>> bar(0.5, 8), bar(0.0, 4), bar(1 / 16, 4)
    ('████', '', '▎')
    """
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + ("" if part == 0 else " ▏▎▍▌▋▊▉"[part])


def headline(report: MemoryReport) -> Text:
    """``Predicted peak: 14.9 GiB in backward of step 2``."""
    text = Text("Predicted peak: ")
    text.append(format_bytes(report.peak), style="bold")
    where = f" in {report.phase}" + (f" of step {report.step_of_peak}" if report.mode == "train" else "")
    text.append(where + (f" (at {report.op})" if report.op else ""))
    return text


def render_breakdown(report: MemoryReport) -> RenderableType:
    """What is alive at the peak, by kind, with a bar for each share."""
    table = Table(title="alive at the peak", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("kind")
    table.add_column("bytes", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    total = max(report.peak, 1)
    for kind in KINDS:
        n = report.kind(kind)
        if kind == "buffers" and n == 0:
            continue
        table.add_row(kind, format_bytes(n), f"{n / total:.1%}", Text(bar(n / total), style=_STYLE[kind]))
    table.add_row(Text("total", style="bold"), Text(format_bytes(report.peak), style="bold"), "100.0%", "")
    return fitted(table, optional=("",))


def render_modules(report: MemoryReport, limit: int = 12) -> RenderableType:
    """Bytes at the peak per top-level module (the largest ``limit``, the rest summed).

    Columns: parameters and buffers, gradients, optimizer state, activations, temporaries, total.
    """
    table = Table(title="per top-level module", title_justify="left", show_edge=False, pad_edge=False)
    for name in ("module", "params", "grads", "optim", "activ", "temp", "total"):
        table.add_column(name, justify="left" if name == "module" else "right")
    rows = sorted(report.modules, key=lambda m: -m.total)
    shown, rest = rows[:limit], rows[limit:]
    for m in shown:
        table.add_row(
            m.name, format_bytes(m.parameters + m.buffers), format_bytes(m.gradients),
            format_bytes(m.optimizer_state), format_bytes(m.activations), format_bytes(m.temporaries),
            format_bytes(m.total),
        )  # fmt: skip
    if rest:
        table.add_row(f"({len(rest)} more)", "", "", "", "", "", format_bytes(sum(m.total for m in rest)))
    # narrow consoles keep the module, its total and the largest parts
    return fitted(table, drop=("temp", "activ", "grads", "optim"))


def fit_line(fit: FitResult) -> Text:
    """The ``--fit`` answer in one line (the only line when nothing fits)."""
    usable = format_bytes(fit.usable)
    if fit.batch_size == 0:
        if fit.reason == "the weights alone do not fit":
            return Text(
                f"does not fit {fit.target}: the weights alone need {format_bytes(fit.weights)}, more than "
                f"the {usable} usable (after {fit.margin.describe()})",
                style="bold red",
            )
        return Text(
            f"does not fit {fit.target}: batch size 1 needs more than the {usable} usable "
            f"(after {fit.margin.describe()})",
            style="bold red",
        )
    if fit.at_limit:
        text = Text(f"fits {fit.target}: every batch size up to the search limit ")
        text.append(f"{fit.search_limit:,}", style="bold green")
        text.append(f" fits; peak at {fit.search_limit:,}: {format_bytes(fit.peak)} of {usable} usable")
        return text
    text = Text(f"fits {fit.target}: largest batch size ")
    text.append(str(fit.batch_size), style="bold green")
    text.append(f", peak {format_bytes(fit.peak)} of {usable} usable")
    if fit.next_peak is not None:
        text.append(f"; batch {fit.batch_size + 1} would need {format_bytes(fit.next_peak)}")
    if fit.reason:
        text.append(f" ({fit.reason})")
    return text


def render_memory(report: MemoryReport, *, modules: int = 12) -> RenderableType:
    """The whole report: what was traced, the peak, the breakdown, the modules, the fit, the notes."""
    inputs = ", ".join(format_shape(s) for s in report.inputs)
    params = f"{report.trainable:,} of {report.total_params:,} params trainable"
    head = Text(f"{report.model} · inputs {inputs} · {report.device} · {params}\n", style="dim")
    head.append(f"step: {report.step}", style="dim")
    parts: list[RenderableType] = [head, Text(""), headline(report), Text("")]
    parts += [render_breakdown(report), Text(""), render_modules(report, modules)]
    if report.fit is not None:
        parts += [Text(""), fit_line(report.fit)]
        parts.append(Text(f"margin kept free: {report.fit.margin.describe()}", style="dim"))
    parts += [Text("")] + [Text(f"note: {n}", style="dim") for n in report.notes]
    return Group(*parts)
