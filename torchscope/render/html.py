"""The ``torchscope report`` page: one self-contained HTML file, from a :class:`ReportData`.

Everything is inline: CSS in a ``<style>`` block, charts as ``<svg>`` elements, no script, no font,
no image and no link that loads anything from the network. It opens the same from an e-mail
attachment, a CI artifact or an air-gapped machine.

The page is made of the sections in :mod:`torchscope.render.sections`, one per result, the same
ones each result shows in a notebook cell. No torch here: the page is a pure function of the data.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from torchscope._format import format_bytes, format_shape
from torchscope.render import sections
from torchscope.render._charts import format_number, hbar_chart_svg

if TYPE_CHECKING:
    from rich.console import RenderableType

    from torchscope._report import ReportData

PAGE_CSS = """
* { box-sizing: border-box; }
body { margin: 0; background: var(--jp-layout-color0, #f6f7f9); }
@media (prefers-color-scheme: dark) { body { background: #15171b; } }
main.tsr { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; font-size: 14px; }
.tsr h1 { font-size: 22px; margin: 0 0 4px; }
.tsr h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--ts-line); }
.tsr table { width: 100%; }
.tsr .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.tsr .card { background: var(--ts-panel); border: 1px solid var(--ts-line); border-radius: 8px; padding: 10px 12px; }
.tsr .card .k { color: var(--ts-muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tsr .card .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tsr .chart-box { max-width: none; }
.tsr footer { color: var(--ts-muted); font-size: 12px; margin-top: 32px; }
"""

#: What each check kind proves when it has no violation (the sections' table, named here for old imports).
CHECK_TEXT = sections.CHECK_TEXT


def _cards(data: ReportData) -> str:
    cards = [
        ("params", format_number(data.total_params)),
        ("trainable", format_number(data.trainable_params)),
        ("frozen", format_number(data.frozen_params)),
    ]
    if data.summary is not None and data.mult_adds is not None:
        lower = ">= " if data.summary.mult_adds_lower_bound else ""
        cards.append(("mult-adds", lower + format_number(data.mult_adds)))
    t = data.tree
    cards.append(("modules train / eval", f"{t.modules_in_train_mode} / {t.modules_in_eval_mode}"))
    if data.check is not None:
        cards.append(("freeze check", "✓ ok" if data.check.ok else f"✗ {len(data.check.violations)} violations"))
    if data.memory is not None:
        cards.append(("peak memory (cuda)", format_bytes(data.memory.peak)))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>' for k, v in cards
    ) + "</div>"


def _charts(data: ReportData) -> str:
    boxes = []
    if data.activations is not None:
        boxes += sections.activation_charts(data.activations)
    if data.grads is not None:
        boxes += sections.grad_charts(data.grads)
    blocks = [m for m in data.tree.modules if m.depth == 1 and m.params > 0]  # relu/pool rows add zeros
    if blocks:
        boxes.append(
            hbar_chart_svg(
                [b.params for b in blocks], labels=[f"{b.name} ({b.type})" for b in blocks], title="Params by top-level block"
            )
        )
    if data.memory is not None and data.memory.peak:
        boxes.append(sections.memory_chart(data.memory))
    if not boxes:
        return '<p class="sub">No chart: nothing was collected.</p>'
    return sections.charts(boxes)


def report_sections(data: ReportData) -> list[str]:
    """The page's body: every part's own section, under its heading (also the report's notebook display)."""
    warnings = [w.message for w in data.tree.warnings]
    notes = sections.notes([*warnings[:3], *data.notes])
    if len(warnings) > 3:
        notes += f"<details><summary>{len(warnings) - 3} more warnings</summary>{sections.notes(warnings[3:])}</details>"
    inputs = ", ".join(format_shape(shape) for shape in data.input_size) or "–"
    check = (
        sections.check_html(data.check, data.check_step)
        if data.check is not None
        else '<div class="verdict none">Freeze check not run.</div>'
    )
    parts = [
        f"<h1>{escape(data.title)}</h1>",
        f'<p class="sub">{escape(data.model_type)} · input {escape(inputs)} · {escape(data.generated_by)}</p>',
        notes,
        _cards(data),
        "<h2>Charts</h2>",
        _charts(data),
        "<h2>Freeze check</h2>",
        check,
        "<h2>Module tree</h2>",
        sections.tree_html(data.tree),
    ]
    if data.summary is not None:
        parts += ["<h2>Summary: shapes and mult-adds</h2>", sections.summary_html(data.summary)]
    if data.activations is not None:
        parts += ["<h2>Activations</h2>", sections.activations_html(data.activations, with_charts=False)]
    parts += ["<h2>Gradients</h2>"]
    parts += [sections.grads_html(data.grads, with_charts=False) if data.grads is not None else '<p class="sub">No gradients recorded.</p>']
    if data.memory is not None:
        parts += ["<h2>Memory: predicted peak of a training step</h2>", sections.memory_html(data.memory, with_charts=False)]
    return [p for p in parts if p]


def render_html(data: ReportData) -> str:
    """The whole page as one string; write it with ``Path.write_text(..., encoding="utf-8")``.

    >>> import torch
    >>> from torchscope._report import collect_report
    >>> page = render_html(collect_report(torch.nn.Linear(2, 3), input_size=(1, 2), memory=False))
    >>> page.startswith("<!DOCTYPE html>") and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    True
    """
    body = "\n".join(report_sections(data))
    footer = "<footer>Generated by torchscope. Self-contained: this file loads nothing from the network.</footer>"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>torchscope report: {escape(data.title)}</title>\n"
        f"<style>{sections.CSS}{PAGE_CSS}</style>\n</head>\n<body>\n"
        f'<main class="tsr">\n{body}\n{footer}\n</main>\n</body>\n</html>\n'
    )


def render_report_terminal(data: ReportData, *, html_path: str | None = None) -> RenderableType:
    """The terminal side of ``torchscope report``: totals, sparklines by depth, the freeze verdict."""
    from rich.table import Table
    from rich.text import Text

    from torchscope.render._charts import sparkline

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    params = (
        f"{format_number(data.total_params)} (trainable {format_number(data.trainable_params)}, "
        f"frozen {format_number(data.frozen_params)})"
    )
    table.add_row("params", params)
    if data.summary is not None and data.mult_adds is not None:
        lower = ">= " if data.summary.mult_adds_lower_bound else ""
        table.add_row("mult-adds", lower + format_number(data.mult_adds))
    if data.activations is not None:
        acts = [c for _, c in sections.activation_depth_rows(data.activations)]
        if acts:
            table.add_row("activation std by depth", Text(sparkline([c.stats.std for c in acts], log=True), style="blue"))
            table.add_row("zeros by depth", Text(sparkline([c.stats.zero_fraction for c in acts]), style="dark_orange"))
    if data.grads is not None and data.grads.layers:
        layers = data.grads.layers
        trainable = [la for la in layers if la.trainable]
        table.add_row(
            "grad norm by layer",
            Text(sparkline([la.grad_norm for la in trainable], log=True), style="blue")
            + Text(f"  ({len(trainable)} trainable, {len(layers) - len(trainable)} frozen layers)", style="dim"),
        )
    if data.grads is not None and data.grads.unused:
        table.add_row("unused", Text(", ".join(data.grads.unused), style="yellow"))
    if data.memory is not None:
        m = data.memory
        table.add_row(
            "peak memory",
            Text(f"{format_bytes(m.peak)} predicted for {m.device}, in {m.phase}")
            + Text("  (torchscope memory: the breakdown, --fit)", style="dim"),
        )
    check = data.check
    if check is None:
        table.add_row("freeze check", Text("not run", style="dim"))
    elif check.ok:
        table.add_row("freeze check", Text(sections.held_words(check, "invariant"), style="green"))
        if check.not_checked:
            shown = "; ".join(f"{kind} ({why})" for kind, why in check.not_checked)
            table.add_row("not checked", Text(shown, style="dim"))
    else:
        kinds: dict[str, int] = {}
        for v in check.violations:
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
        text = ", ".join(f"{k} ×{n}" for k, n in kinds.items())
        table.add_row("freeze check", Text(f"✗ {len(check.violations)} violations: {text}", style="red"))
    for note in data.notes:
        table.add_row("note", Text(note, style="yellow"))
    if html_path:
        table.add_row("page", html_path)
    from torchscope.render._fit import TitledPanel

    return TitledPanel([table], "torchscope report", data.title, sep=": ", expand=False)
