"""The ``torchscope report`` page: one self-contained HTML file, from a :class:`ReportData`.

Everything is inline: CSS in a ``<style>`` block, charts as ``<svg>`` elements, no script, no font,
no image and no link that loads anything from the network. It opens the same from an e-mail
attachment, a CI artifact or an air-gapped machine.

No torch here: the page is a pure function of the plain data the collectors produced.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING

from torchscope._format import format_bytes, format_shape
from torchscope.render._charts import (
    COLOR_SECOND,
    bar_chart_svg,
    format_number,
    hbar_chart_svg,
    line_chart_svg,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from torchscope._report import ReportData

CSS = """
:root { --text: #30343b; --muted: #6b7280; --line: #e3e6eb; --ok: #1e8e3e; --bad: #c0392b;
        --warn: #b7791f; --accent: #3b6fd8; --frozen: #b8bec8; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: 1fr; gap: 12px; }
.chart-box { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 6px; overflow-x: auto; }
svg.chart { display: block; width: 100%; height: auto; }
.verdict { border-radius: 8px; padding: 10px 14px; font-weight: 600; margin-bottom: 8px; }
.verdict.ok { background: #e6f4ea; color: var(--ok); }
.verdict.bad { background: #fdecea; color: var(--bad); }
.verdict.none { background: #fff; color: var(--muted); border: 1px solid var(--line); }
ul.checks { list-style: none; padding: 0; margin: 0; }
ul.checks li { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; margin: 4px 0; }
ul.checks .mark { display: inline-block; width: 1.3em; font-weight: 700; }
ul.checks .ok .mark { color: var(--ok); } ul.checks .bad .mark { color: var(--bad); }
ul.checks .none { color: var(--muted); }
ul.checks .detail { color: var(--muted); margin-left: 1.3em; white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #fafbfc; font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: nowrap; }
tr.frozen td { color: var(--muted); }
tr.flag td { background: #fff5f5; }
.tag { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 12px; }
.tag.trainable { background: #e8effc; color: var(--accent); } .tag.frozen { background: #eef0f3; color: var(--muted); }
.tag.partial { background: #fdf3e1; color: var(--warn); } .tag.none { color: var(--muted); }
.tag.flag { background: #fdecea; color: var(--bad); }
details { margin-top: 8px; } summary { cursor: pointer; color: var(--accent); }
.note { color: var(--warn); background: #fffaf0; border: 1px solid #f3e3c3; border-radius: 6px; padding: 6px 10px; margin: 4px 0; }
.scroll { max-height: 520px; overflow: auto; border-radius: 6px; }
footer { color: var(--muted); font-size: 12px; margin-top: 32px; }
"""


# What each check_step kind proves when it has no violation.
CHECK_TEXT: dict[str, str] = {
    "frozen_param_changed": "frozen params unchanged",
    "frozen_buffer_changed": "frozen buffers (norm running stats) unchanged",
    "trainable_not_updated": "every trainable param updated",
    "nonfinite": "no NaN/Inf in params, grads or buffers",
    "optimizer_missing_param": "every trainable param is in an optimizer group",
    "optimizer_frozen_param": "no frozen param in a group with weight decay or momentum state",
    "optimizer_stale_param": "the optimizer holds no tensor that left the model",
    "optimizer_duplicate_param": "no param in two optimizer groups",
    "tied_conflict": "no tied tensor both frozen and trainable",
    "tensor_replaced": "no tensor under check replaced by another",
    "tensor_removed": "no name under check vanished",
    "tensor_added": "no new name where everything was frozen",
    "requires_grad_changed": "no requires_grad flag changed",
    "head_not_trained": "a new task head trains (it is in modules_to_save)",
}


def _num(v: float | int | None) -> str:
    return escape(format_number(v))


def _count(v: int | None) -> str:
    return "–" if v is None else f"{v:,}"


def _table(
    headers: Sequence[tuple[str, bool]], rows: Iterable[tuple[Sequence[str], str]], *, empty: str
) -> str:
    """``headers`` are (title, numeric); each row is (already-escaped cells, css class)."""
    head = "".join(f'<th class="num">{escape(h)}</th>' if num else f"<th>{escape(h)}</th>" for h, num in headers)
    body = []
    for cells, cls in rows:
        tds = "".join(
            f'<td class="num">{c}</td>' if num else (f'<td class="name">{c}</td>' if i == 0 else f"<td>{c}</td>")
            for i, (c, (_, num)) in enumerate(zip(cells, headers, strict=True))
        )
        body.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    if not body:
        return f'<p class="sub">{escape(empty)}</p>'
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _cards(data: ReportData) -> str:
    cards = [
        ("params", format_number(data.total_params)),
        ("trainable", format_number(data.trainable_params)),
        ("frozen", format_number(data.frozen_params)),
    ]
    if data.mult_adds is not None:
        cards.append(("mult-adds", (">= " if data.mult_adds_lower_bound else "") + format_number(data.mult_adds)))
    if data.modules_in_train_mode is not None:
        cards.append(("modules train / eval", f"{data.modules_in_train_mode} / {data.modules_in_eval_mode}"))
    if data.check_ok is not None:
        cards.append(("freeze check", "✓ ok" if data.check_ok else f"✗ {len(data.violations)} violations"))
    if data.memory is not None:
        cards.append(("peak memory (cuda)", format_bytes(data.memory.peak)))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>' for k, v in cards
    ) + "</div>"


def _charts(data: ReportData) -> str:
    boxes = []
    # By depth: the leaf modules (a container's output repeats its last child's).
    acts = [a for a in data.activations if a.leaf] or list(data.activations)
    if acts:
        labels = [a.name for a in acts]
        boxes.append(
            line_chart_svg(
                [("std", [a.std for a in acts])],
                labels=labels,
                title="Activation std by depth (log scale)",
                log=True,
                y_label="std",
            )
        )
        boxes.append(
            line_chart_svg(
                [("fraction of zeros", [a.zero_frac for a in acts])],
                labels=labels,
                title="Fraction of zeros by depth",
                y_label="zeros",
                colors=(COLOR_SECOND,),
            )
        )
    if data.grads:
        boxes.append(
            bar_chart_svg(
                [g.norm for g in data.grads],
                labels=[g.name for g in data.grads],
                greyed=[g.frozen for g in data.grads],
                title="Grad norm by layer (log scale; frozen layers grey)",
                log=True,
            )
        )
    blocks = [b for b in data.blocks if b.params > 0]  # relu/pool rows would only add zeros
    if blocks:
        boxes.append(
            hbar_chart_svg(
                [b.params for b in blocks],
                labels=[f"{b.name} ({b.type})" for b in blocks],
                title="Params by top-level block",
            )
        )
    if not boxes:
        return '<p class="sub">No chart: nothing was collected.</p>'
    return '<div class="charts">' + "".join(f'<div class="chart-box">{svg}</div>' for svg in boxes) + "</div>"


def _held_words(data: ReportData, what: str = "freeze invariant") -> str:
    """A freeze check with no violation: "every invariant holds" only when each had something to look at."""
    if data.not_checked:
        return f"✓ every checked {what} holds ({len(data.not_checked)} not checked)"
    return f"✓ every {what} holds"


def _freeze_section(data: ReportData) -> str:
    if data.check_ok is None:
        return '<div class="verdict none">Freeze check not run.</div>'
    parts = [
        f'<div class="verdict {"ok" if data.check_ok else "bad"}">'
        + (f"✗ {len(data.violations)} violation(s)" if not data.check_ok else _held_words(data))
        + "</div>"
    ]
    items = []
    for kind in data.checks:
        text = CHECK_TEXT.get(kind, kind)
        items.append(f'<li class="ok"><span class="mark">✓</span>{escape(text)} <code>{escape(kind)}</code></li>')
    for kind, why in data.not_checked:
        text = CHECK_TEXT.get(kind, kind)
        items.append(
            f'<li class="none"><span class="mark">–</span>{escape(text)}: {escape(why)}, not checked '
            f"<code>{escape(kind)}</code></li>"
        )
    for v in data.violations:
        change = f" (max |Δ| {format_number(v.max_abs_change)})" if v.max_abs_change is not None else ""
        items.append(
            f'<li class="bad"><span class="mark">✗</span><b>{escape(v.kind)}</b> '
            f'<code>{escape(v.name)}</code>{escape(change)}<div class="detail">{escape(v.cause)}</div></li>'
        )
    parts.append('<ul class="checks">' + "".join(items) + "</ul>")
    if data.check_summary:
        parts.append(f'<p class="sub">{escape(data.check_summary)}</p>')
    return "".join(parts)


def _tree_section(data: ReportData) -> str:
    rows = []
    for m in data.modules:
        indent = "&nbsp;&nbsp;" * m.depth
        name = escape(m.name or "(model)")
        rows.append(
            (
                [
                    f"{indent}{name}",
                    escape(m.type),
                    _count(m.params),
                    f'<span class="tag {escape(m.freeze)}">{escape(m.freeze)}</span>',
                    "train" if m.training else "eval",
                ],
                "frozen" if m.freeze == "frozen" else "",
            )
        )
    return _table(
        [("module", False), ("type", False), ("params", True), ("state", False), ("mode", False)],
        rows,
        empty="No modules.",
    )


def _summary_section(data: ReportData) -> str:
    rows = [
        (
            [escape(r.name), escape(r.type), escape(r.input_shape), escape(r.output_shape), _count(r.params), _num(r.mult_adds)],
            "",
        )
        for r in data.layers
    ]
    return _table(
        [("module", False), ("type", False), ("input", False), ("output", False), ("params", True), ("mult-adds", True)],
        rows,
        empty="No forward pass recorded.",
    )


def _activations_section(data: ReportData) -> str:
    rows = [
        (
            [
                escape(a.name),
                escape(a.type),
                escape(a.shape),
                _num(a.mean),
                _num(a.std),
                _num(a.zero_frac),
                " ".join(f'<span class="tag flag">{escape(f)}</span>' for f in a.flags),
            ],
            "flag" if a.flags else "",
        )
        for a in data.activations
    ]
    return _table(
        [("module", False), ("type", False), ("output", False), ("mean", True), ("std", True), ("zeros", True), ("flags", False)],
        rows,
        empty="No activations recorded.",
    )


def _grads_section(data: ReportData) -> str:
    rows = [
        (
            [escape(g.name), escape(g.type), _num(g.norm), "frozen" if g.frozen else "trainable",
             " ".join(f'<span class="tag flag">{escape(f)}</span>' for f in g.flags)],
            "frozen" if g.frozen else ("flag" if g.flags else ""),
        )
        for g in data.grads
    ]
    out = _table(
        [("layer", False), ("type", False), ("grad norm", True), ("state", False), ("flags", False)],
        rows,
        empty="No gradients recorded.",
    )
    if data.unused:
        out += '<div class="note">Trainable but no grad (unused): ' + ", ".join(
            f"<code>{escape(n)}</code>" for n in data.unused
        ) + "</div>"
    return out


def _memory_section(data: ReportData) -> str:
    """The predicted peak, what is alive at it by kind, and the largest top-level modules."""
    m = data.memory
    if m is None:
        return ""
    where = f"{m.phase} of step {m.step_of_peak}" if m.mode == "train" else m.phase
    head = (
        f'<p class="sub">{escape(m.step)}; predicted for {escape(m.device)} '
        f"(each storage rounded to {m.block} bytes): peak <b>{escape(format_bytes(m.peak))}</b> "
        f"in {escape(where)}. Tensor storage only (no CUDA context, workspaces or fragmentation); "
        "see <code>torchscope memory --fit</code>.</p>"
    )
    total = max(m.peak, 1)
    kinds = _table(
        [("kind", False), ("bytes", True), ("share", True)],
        [((escape(k), escape(format_bytes(n)), f"{n / total:.1%}"), "") for k, n in m.breakdown if n or k != "buffers"],
        empty="nothing alive",
    )
    top = sorted(m.modules, key=lambda r: -r.total)[:12]
    modules = _table(
        [("module", False), ("params", True), ("grads", True), ("optimizer", True), ("activations", True),
         ("temporaries", True), ("total", True)],
        (
            (
                (escape(r.name), *(escape(format_bytes(v)) for v in (
                    r.parameters + r.buffers, r.gradients, r.optimizer_state, r.activations, r.temporaries, r.total
                ))),
                "",
            )
            for r in top
        ),
        empty="no modules",
    )  # fmt: skip
    return head + kinds + modules


def render_html(data: ReportData) -> str:
    """The whole page as one string; write it with ``Path.write_text(..., encoding="utf-8")``.

    >>> from torchscope._report import ReportData
    >>> page = render_html(ReportData(title="tiny", model_type="Linear", total_params=6, trainable_params=6, frozen_params=0))
    >>> page.startswith("<!DOCTYPE html>") and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    True
    """
    inputs = ", ".join(format_shape(shape) for shape in data.input_size) or "–"
    notes = "".join(f'<div class="note">{escape(n)}</div>' for n in (*data.warnings[:3], *data.notes))
    if len(data.warnings) > 3:
        rest = "".join(f'<div class="note">{escape(n)}</div>' for n in data.warnings[3:])
        notes += f"<details><summary>{len(data.warnings) - 3} more warnings</summary>{rest}</details>"
    sections = [
        f"<h1>{escape(data.title)}</h1>",
        f'<p class="sub">{escape(data.model_type)} · input {escape(inputs)} · {escape(data.generated_by)}</p>',
        notes,
        _cards(data),
        "<h2>Charts</h2>",
        _charts(data),
        "<h2>Freeze check</h2>",
        _freeze_section(data),
        "<h2>Module tree</h2>",
        _tree_section(data),
        "<h2>Summary: shapes and mult-adds</h2>",
        _summary_section(data),
        "<h2>Activations</h2>",
        _activations_section(data),
        "<h2>Gradients</h2>",
        _grads_section(data),
        "<h2>Memory: predicted peak of a training step</h2>" if data.memory is not None else "",
        _memory_section(data),
        "<footer>Generated by torchscope. Self-contained: this file loads nothing from the network."
        "</footer>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>torchscope report: {escape(data.title)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n" + "\n".join(s for s in sections if s) + "\n</main>\n</body>\n</html>\n"
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
    if data.mult_adds is not None:
        table.add_row("mult-adds", (">= " if data.mult_adds_lower_bound else "") + format_number(data.mult_adds))
    acts = [a for a in data.activations if a.leaf] or list(data.activations)
    if acts:
        table.add_row("activation std by depth", Text(sparkline([a.std for a in acts], log=True), style="blue"))
        table.add_row("zeros by depth", Text(sparkline([a.zero_frac for a in acts]), style="dark_orange"))
    if data.grads:
        trainable = [g for g in data.grads if not g.frozen]
        table.add_row(
            "grad norm by layer",
            Text(sparkline([g.norm for g in trainable], log=True), style="blue")
            + Text(f"  ({len(trainable)} trainable, {len(data.grads) - len(trainable)} frozen layers)", style="dim"),
        )
    if data.unused:
        table.add_row("unused", Text(", ".join(data.unused), style="yellow"))
    if data.memory is not None:
        m = data.memory
        table.add_row(
            "peak memory",
            Text(f"{format_bytes(m.peak)} predicted for {m.device}, in {m.phase}")
            + Text("  (torchscope memory: the breakdown, --fit)", style="dim"),
        )
    if data.check_ok is None:
        table.add_row("freeze check", Text("not run", style="dim"))
    elif data.check_ok:
        table.add_row("freeze check", Text(_held_words(data, "invariant"), style="green"))
        if data.not_checked:
            shown = "; ".join(f"{kind} ({why})" for kind, why in data.not_checked)
            table.add_row("not checked", Text(shown, style="dim"))
    else:
        kinds: dict[str, int] = {}
        for v in data.violations:
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
        text = ", ".join(f"{k} ×{n}" for k, n in kinds.items())
        table.add_row("freeze check", Text(f"✗ {len(data.violations)} violations: {text}", style="red"))
    for note in data.notes:
        table.add_row("note", Text(note, style="yellow"))
    if html_path:
        table.add_row("page", html_path)
    from rich.panel import Panel

    return Panel(table, title=f"torchscope report: {data.title}", title_align="left", expand=False)
