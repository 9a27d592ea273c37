"""HTML sections, one per result type: the ``report`` page is made of them, and so is each result's
notebook display (``_repr_html_``). One renderer: the page and the cell show the same tables.

Everything is escaped; charts are inline SVG (:mod:`torchscope.render._charts`); no script, nothing
fetched. Colours come from CSS variables scoped to ``.tsr``: Jupyter's theme variables where they
exist (JupyterLab light and dark), else ``prefers-color-scheme``. No torch here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from torchscope._format import format_bytes, format_count, format_shape
from torchscope.render._charts import (
    COLOR_SECOND,
    bar_chart_svg,
    format_number,
    line_chart_svg,
    stacked_bar_svg,
)

if TYPE_CHECKING:
    from torchscope._bench.schema import BenchResult
    from torchscope._checkparts.report import StepCheck
    from torchscope._diff import DiffReport
    from torchscope._grads import GradReport
    from torchscope._memory.schema import MemoryReport
    from torchscope._record import ActivationReport
    from torchscope._stats import ParamStats
    from torchscope._summary import Summary, TensorSpec
    from torchscope._treedata import ModuleEntry, ModuleTree

# Light values, overridden by Jupyter's theme variables where the page has them, and by the
# system's dark scheme elsewhere.
CSS = """
.tsr { --ts-text: var(--jp-content-font-color1, #30343b); --ts-muted: var(--jp-content-font-color2, #6b7280);
       --ts-line: var(--jp-border-color2, #e3e6eb); --ts-panel: var(--jp-layout-color1, #ffffff);
       --ts-head: var(--jp-layout-color2, #fafbfc); --ts-ok: #1e8e3e; --ts-bad: #c0392b; --ts-warn: #b7791f;
       --ts-accent: #3b6fd8; --ts-okbg: #e6f4ea; --ts-badbg: #fdecea; --ts-notebg: #fffaf0;
       color: var(--ts-text); font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
@media (prefers-color-scheme: dark) {
  .tsr { --ts-text: var(--jp-content-font-color1, #e6e8eb); --ts-muted: var(--jp-content-font-color2, #a0a7b4);
         --ts-line: var(--jp-border-color2, #3a3f47); --ts-panel: var(--jp-layout-color1, #1e2127);
         --ts-head: var(--jp-layout-color2, #262a31); --ts-ok: #5cc27a; --ts-bad: #ef6b5b; --ts-warn: #e0b054;
         --ts-accent: #7aa2f7; --ts-okbg: #1f3527; --ts-badbg: #3d2220; --ts-notebg: #3a3220; }
}
.tsr h3 { font-size: 14px; margin: 4px 0 6px; }
.tsr .sub { color: var(--ts-muted); margin: 2px 0 8px; }
.tsr table { border-collapse: collapse; background: var(--ts-panel); border: 1px solid var(--ts-line); font-size: 12px; }
.tsr th, .tsr td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--ts-line); vertical-align: top;
                   color: var(--ts-text); }
.tsr th { background: var(--ts-head); font-weight: 600; position: sticky; top: 0; }
.tsr td.num, .tsr th.num { text-align: right; font-variant-numeric: tabular-nums; }
.tsr td.name, .tsr code, .tsr .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.tsr td.name { white-space: nowrap; }
.tsr tr.frozen td { color: var(--ts-muted); }
.tsr tr.flag td { background: var(--ts-badbg); }
.tsr .scroll { max-height: 480px; overflow: auto; border-radius: 6px; }
.tsr .tag { display: inline-block; border-radius: 4px; padding: 0 6px; font-size: 11px; border: 1px solid var(--ts-line); }
.tsr .tag.trainable { color: var(--ts-accent); } .tsr .tag.frozen, .tsr .tag.none { color: var(--ts-muted); }
.tsr .tag.partial { color: var(--ts-warn); } .tsr .tag.flag { color: var(--ts-bad); }
.tsr .verdict { border-radius: 6px; padding: 6px 10px; font-weight: 600; margin: 4px 0 6px; }
.tsr .verdict.ok { background: var(--ts-okbg); color: var(--ts-ok); }
.tsr .verdict.bad { background: var(--ts-badbg); color: var(--ts-bad); }
.tsr .verdict.none { border: 1px solid var(--ts-line); color: var(--ts-muted); }
.tsr ul.checks { list-style: none; padding: 0; margin: 0; }
.tsr ul.checks li { border: 1px solid var(--ts-line); border-radius: 6px; padding: 4px 8px; margin: 3px 0; }
.tsr ul.checks .mark { display: inline-block; width: 1.3em; font-weight: 700; }
.tsr ul.checks .ok .mark { color: var(--ts-ok); } .tsr ul.checks .bad .mark { color: var(--ts-bad); }
.tsr ul.checks .none { color: var(--ts-muted); }
.tsr ul.checks .detail { color: var(--ts-muted); margin-left: 1.3em; white-space: pre-wrap; }
.tsr .note { color: var(--ts-warn); background: var(--ts-notebg); border: 1px solid var(--ts-line); border-radius: 6px;
             padding: 4px 8px; margin: 3px 0; }
.tsr dl.totals { display: grid; grid-template-columns: max-content max-content; gap: 0 14px; margin: 6px 0; }
.tsr dl.totals dt { color: var(--ts-muted); } .tsr dl.totals dd { margin: 0; font-variant-numeric: tabular-nums; }
.tsr ul.tree, .tsr ul.tree ul { list-style: none; margin: 0; padding-left: 16px; }
.tsr ul.tree { padding-left: 0; }
.tsr ul.tree summary { cursor: pointer; }
.tsr ul.tree .leaf { padding-left: 14px; }
.tsr ul.tree .t { color: var(--ts-muted); } .tsr ul.tree .n { font-variant-numeric: tabular-nums; }
.tsr .chart-box { background: var(--ts-panel); border: 1px solid var(--ts-line); border-radius: 6px; padding: 4px;
                  margin: 6px 0; overflow-x: auto; max-width: 1060px; }
.tsr svg.chart { display: block; width: 100%; height: auto; }
.tsr svg.chart text { fill: var(--ts-text); }
.tsr svg.chart line { stroke: var(--ts-line); }
"""

#: Tree levels shown open; deeper modules start folded (a <details> per module with children).
OPEN_LEVELS = 1


def fragment(body: str) -> str:
    """One result's HTML for a notebook cell: the scoped style, then the body."""
    return f'<div class="tsr"><style>{CSS}</style>{body}</div>'


def count(v: int | None) -> str:
    """An exact count, ``11,689,512``; ``–`` when unknown."""
    return "–" if v is None else format_count(v)


def num(v: float | int | None) -> str:
    return escape(format_number(v))


def tag(text: str, cls: str) -> str:
    return f'<span class="tag {escape(cls)}">{escape(text)}</span>'


def flags(items: Iterable[str]) -> str:
    return " ".join(tag(f, "flag") for f in items)


def table(headers: Sequence[tuple[str, bool]], rows: Iterable[tuple[Sequence[str], str]], *, empty: str) -> str:
    """``headers`` are (title, numeric); each row is (already-escaped cells, css class)."""
    head = "".join(f'<th class="num">{escape(h)}</th>' if n else f"<th>{escape(h)}</th>" for h, n in headers)
    body = []
    for cells, cls in rows:
        tds = "".join(
            f'<td class="num">{c}</td>' if n else (f'<td class="name">{c}</td>' if i == 0 else f"<td>{c}</td>")
            for i, (c, (_, n)) in enumerate(zip(cells, headers, strict=True))
        )
        body.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    if not body:
        return f'<p class="sub">{escape(empty)}</p>'
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def totals(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of totals in words (``Total params``: ``11,689,512``)."""
    return '<dl class="totals">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in pairs) + "</dl>"


def notes(items: Iterable[str]) -> str:
    return "".join(f'<div class="note">{escape(n)}</div>' for n in items)


def charts(svgs: Iterable[str]) -> str:
    return "".join(f'<div class="chart-box">{svg}</div>' for svg in svgs)


# --- tree ---------------------------------------------------------------------------------------


def _entry_line(m: ModuleEntry) -> str:
    name = escape(m.name.rpartition(".")[2] if m.name else "(model)")
    return (
        f'<span class="mono">{name}</span> <span class="t">{escape(m.type)}</span> '
        f'<span class="n">{count(m.params)}</span> {tag(m.freeze, m.freeze)} '
        f'<span class="t">{"train" if m.training else "eval"}</span>'
    )


def tree_html(t: ModuleTree) -> str:
    """The module tree, folded below :data:`OPEN_LEVELS` levels, then its exact totals."""
    children: dict[str, list[ModuleEntry]] = {}
    for m in t.modules[1:]:
        children.setdefault(m.name.rpartition(".")[0], []).append(m)

    def node(m: ModuleEntry) -> str:
        kids = children.get(m.name, [])
        if not kids:
            return f'<li class="leaf">{_entry_line(m)}</li>'
        opened = " open" if m.depth < OPEN_LEVELS else ""
        inner = "".join(node(k) for k in kids)
        return f"<li><details{opened}><summary>{_entry_line(m)}</summary><ul>{inner}</ul></details></li>"

    body = f'<ul class="tree">{node(t.modules[0])}</ul>' if t.modules else '<p class="sub">No modules.</p>'
    return (
        f"<h3>{escape(t.model_type)}</h3>"
        + body
        + totals(
            [
                ("Total params", count(t.total_params)),
                ("Trainable params", count(t.trainable_params)),
                ("Non-trainable params", count(t.frozen_params)),
                ("Params size", format_bytes(t.total_param_bytes)),
                ("Modules in train / eval mode", f"{t.modules_in_train_mode} / {t.modules_in_eval_mode}"),
            ]
        )
        + notes(w.message for w in t.warnings)
    )


# --- summary ------------------------------------------------------------------------------------


def _shapes(items: tuple[TensorSpec, ...], opaque: bool) -> str:
    if opaque:
        return "?"  # inside TorchScript no hook ran: unknown, not "no tensors"
    return escape(", ".join(format_shape(t.shape) for t in items) or "–")


def summary_html(s: Summary) -> str:
    """Every module call's shapes, params and mult-adds, then the totals in torchinfo's words."""
    rows = [
        (
            [escape(r.name or "(model)"), escape(r.type), _shapes(r.inputs, r.opaque), _shapes(r.outputs, r.opaque),
             count(r.params), "?" if r.opaque else (">= " if r.uncounted_ops else "") + count(r.mult_adds)],
            "",
        )
        for r in s.rows
    ]  # fmt: skip
    pairs = [
        ("Total params", count(s.total_params)),
        ("Trainable params", count(s.trainable_params)),
        ("Non-trainable params", count(s.total_params - s.trainable_params)),
    ]
    if s.total_mult_adds is not None:
        pairs.append(("Total mult-adds", (">= " if s.mult_adds_lower_bound else "") + count(s.total_mult_adds)))
    pairs.append(("Params size", format_bytes(s.param_bytes)))
    head = (
        f"<h3>{escape(s.model)}</h3>"
        f'<p class="sub">{escape(s.mode)} mode · input '
        f"{escape(', '.join(format_shape(t.shape) for t in s.inputs) or '–')}</p>"
    )
    body = table(
        [("module", False), ("type", False), ("input", False), ("output", False), ("params", True), ("mult-adds", True)],
        rows,
        empty="No forward pass recorded (parameters only).",
    )
    return head + body + totals(pairs) + notes(s.notes)


# --- check --------------------------------------------------------------------------------------

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


def held_words(r: StepCheck, what: str = "freeze invariant") -> str:
    """A check with no violation: "every invariant holds" only when each had something to look at."""
    if r.not_checked:
        return f"✓ every checked {what} holds ({len(r.not_checked)} not checked)"
    return f"✓ every {what} holds"


def check_html(r: StepCheck, step: str = "") -> str:
    """The verdict, one line per invariant (held, not checked, violated with its cause)."""
    verdict = f"✗ {len(r.violations)} violation(s)" if not r.ok else held_words(r)
    items = [
        f'<li class="ok"><span class="mark">✓</span>{escape(CHECK_TEXT.get(k, k))} <code>{escape(k)}</code></li>'
        for k in r.held
    ]
    items += [
        f'<li class="none"><span class="mark">–</span>{escape(CHECK_TEXT.get(k, k))}: {escape(why)}, not checked '
        f"<code>{escape(k)}</code></li>"
        for k, why in r.not_checked
    ]
    for v in r.violations:
        change = f" (max |Δ| {format_number(v.max_abs_change)})" if v.max_abs_change is not None else ""
        items.append(
            f'<li class="bad"><span class="mark">✗</span><b>{escape(v.kind)}</b> '
            f'<code>{escape(v.name)}</code>{escape(change)}<div class="detail">{escape(v.cause)}</div></li>'
        )
    step = step or (r.reference.describe() if r.reference is not None else "")
    checked = (
        f"{r.mode} mode: {r.frozen_params:,} frozen and {r.trainable_params:,} trainable of {r.params:,} params, "
        f"{r.frozen_buffers:,} frozen of {r.buffers:,} buffers checked"
    )
    return (
        f'<div class="verdict {"ok" if r.ok else "bad"}">{escape(verdict)}</div>'
        f'<ul class="checks">{"".join(items)}</ul>'
        f'<p class="sub">{escape("; ".join(x for x in (step, checked) if x))}</p>'
        + notes(r.caveats)
    )


# --- activations, grads, stats ------------------------------------------------------------------


def activation_rows(a: ActivationReport) -> list[tuple[str, Any]]:
    """(label, call) of every output with values; labels say the call and the output when not the first."""
    out = []
    for c in a.calls:
        if c.stats is None:
            continue
        label = c.module + (f"#{c.call + 1}" if c.call else "") + ("" if c.output == "output" else f" {c.output}")
        out.append((label, c))
    return out


def _leaves(names: Iterable[str]) -> set[str]:
    names = set(names)
    parents = {n.rpartition(".")[0] for n in names if n} | ({""} if len(names) > 1 else set())
    return names - parents


def activation_depth_rows(a: ActivationReport) -> list[tuple[str, Any]]:
    """The rows of the first forward pass by depth: leaf modules only (a container repeats its last child)."""
    rows = activation_rows(a)
    leaves = _leaves(c.module for _, c in rows)
    return [(label, c) for label, c in rows if c.module in leaves and c.forward == 0] or rows


def activation_charts(a: ActivationReport) -> list[str]:
    """Std (log scale) and the fraction of zeros (dead units) of each leaf layer's output, by depth."""
    by_depth = activation_depth_rows(a)
    if not by_depth:
        return []
    labels = [label for label, _ in by_depth]
    return [
        line_chart_svg([("std", [c.stats.std for _, c in by_depth])], labels=labels,
                       title="Activation std by depth (log scale)", log=True, y_label="std"),
        line_chart_svg([("fraction of zeros", [c.stats.zero_fraction for _, c in by_depth])], labels=labels,
                       title="Fraction of zeros (dead units) by depth", y_label="zeros", colors=(COLOR_SECOND,)),
    ]  # fmt: skip


def activations_html(a: ActivationReport, *, with_charts: bool = True) -> str:
    rows = [
        (
            [escape(label), escape(c.type), escape(format_shape(c.shape)), num(c.stats.mean), num(c.stats.std),
             num(c.stats.zero_fraction), flags(c.flags)],
            "flag" if c.flags else "",
        )
        for label, c in activation_rows(a)
    ]  # fmt: skip
    verdict = {"ok": "ok", "flagged": "bad"}.get(a.status, "none")
    words = {"ok": f"✓ {a.checked:,} outputs checked, none flagged", "flagged": f"✗ {len(a.flags)} flag(s)"}
    head = f'<div class="verdict {verdict}">{escape(words.get(a.status, "not checked: " + a.why_unchecked()))}</div>'
    body = table(
        [("module", False), ("type", False), ("output", False), ("mean", True), ("std", True), ("zeros", True),
         ("flags", False)],
        rows,
        empty="No activations recorded.",
    )  # fmt: skip
    listed = notes(f"{f.kind}: {f.module}: {f.detail}" for f in a.flags)
    return head + (charts(activation_charts(a)) if with_charts else "") + body + listed


def grad_charts(g: GradReport) -> list[str]:
    """The update ratio (grad norm / param norm) of each layer, frozen layers grey, log scale."""
    if not g.layers:
        return []
    return [
        bar_chart_svg(
            [la.ratio for la in g.layers],
            labels=[la.name or "(model)" for la in g.layers],
            greyed=[la.trainable == 0 for la in g.layers],
            title="Update ratio by layer: grad norm / param norm (log scale; frozen layers grey)",
            log=True,
        )
    ]


def grads_html(g: GradReport, *, with_charts: bool = True) -> str:
    rows = [
        (
            [escape(la.name or "(model)"), escape(la.type), count(la.params), num(la.grad_norm), num(la.param_norm),
             num(la.ratio), "frozen" if la.trainable == 0 else "trainable", flags([la.flag] if la.flag else [])],
            "frozen" if la.trainable == 0 else ("flag" if la.flag else ""),
        )
        for la in g.layers
    ]  # fmt: skip
    out = (
        f'<p class="sub">{escape(g.model)} · loss {escape(g.loss)} = {num(g.loss_value)} · {escape(g.mode)} mode</p>'
        + (charts(grad_charts(g)) if with_charts else "")
        + table(
            [("layer", False), ("type", False), ("params", True), ("grad norm", True), ("param norm", True),
             ("ratio", True), ("state", False), ("flags", False)],
            rows,
            empty="No gradients recorded.",
        )
        + totals([("Trainable params", count(g.trainable)), ("Non-trainable params", count(g.frozen))])
    )  # fmt: skip
    if g.unused:
        out += notes(["Trainable but no grad (unused): " + ", ".join(g.unused)])
    return out + notes(g.caveats)


def stats_html(p: ParamStats) -> str:
    rows = [
        (
            [escape(r.name), escape(format_shape(r.shape)), count(r.numel), escape(r.dtype),
             "trainable" if r.requires_grad else "frozen", num(r.norm), num(r.mean), num(r.std), num(r.zero_fraction),
             escape(r.grad), num(r.grad_ratio)],
            "" if r.requires_grad else "frozen",
        )
        for r in p.rows
    ]  # fmt: skip
    return (
        table(
            [("param", False), ("shape", False), ("numel", True), ("dtype", False), ("state", False), ("norm", True),
             ("mean", True), ("std", True), ("zeros", True), ("grad", False), ("grad / param", True)],
            rows,
            empty="No parameters.",
        )
        + totals([("Total params", count(p.total)), ("Trainable params", count(p.trainable)),
                  ("Non-trainable params", count(p.frozen))])
        + notes(p.flags)
    )  # fmt: skip


# --- diff, memory, bench ------------------------------------------------------------------------


def diff_html(d: DiffReport) -> str:
    def shape(s: tuple[int, ...] | None) -> str:
        return "–" if s is None else escape(format_shape(s))

    rows = [
        ([escape(e.name), escape(e.status), shape(e.shape_a), shape(e.shape_b), num(e.max_abs), num(e.rel_change),
          "yes" if e.expected_frozen else "", escape(e.cause)],
         "flag" if e.violates else "")
        for e in d.entries
    ]  # fmt: skip
    verdict = f'<div class="verdict {"ok" if d.ok else "bad"}">' + (
        "✓ no expected-frozen tensor changed" if d.ok else f"✗ {len(d.violations)} expected-frozen tensor(s) changed"
    ) + "</div>"
    counts = totals((status, count(n)) for status, n in d.counts.items())
    return (
        f'<p class="sub">{escape(d.a)} → {escape(d.b)}</p>' + verdict + counts
        + table([("tensor", False), ("status", False), ("shape A", False), ("shape B", False), ("max |Δ|", True),
                 ("rel change", True), ("frozen", False), ("cause", False)], rows, empty="No tensors.")
    )  # fmt: skip


def memory_chart(m: MemoryReport) -> str:
    """What is alive at the peak, by kind, as one stacked bar."""
    parts = [(kind, n) for kind, n in m.breakdown if n > 0]
    return stacked_bar_svg(parts, title=f"Alive at the peak: {format_bytes(m.peak)} ({m.phase})")


def memory_html(m: MemoryReport, *, with_charts: bool = True) -> str:
    """The predicted peak, what is alive at it by kind, and the largest top-level modules."""
    where = f"{m.phase} of step {m.step_of_peak}" if m.mode == "train" else m.phase
    head = (
        f'<p class="sub">{escape(m.step)}; predicted for {escape(m.device)} '
        f"(each storage rounded to {m.block} bytes): peak <b>{escape(format_bytes(m.peak))}</b> "
        f"({m.peak:,} bytes) in {escape(where)}. Tensor storage only (no CUDA context, workspaces or "
        "fragmentation); see <code>torchscope memory --fit</code>.</p>"
    )
    total = max(m.peak, 1)
    kinds = table(
        [("kind", False), ("bytes", True), ("share", True)],
        [((escape(k), escape(format_bytes(n)), f"{n / total:.1%}"), "") for k, n in m.breakdown if n or k != "buffers"],
        empty="nothing alive",
    )
    top = sorted(m.modules, key=lambda r: -r.total)[:12]
    modules = table(
        [("module", False), ("params", True), ("grads", True), ("optimizer", True), ("activations", True),
         ("temporaries", True), ("total", True)],
        (
            ((escape(r.name), *(escape(format_bytes(v)) for v in (
                r.parameters + r.buffers, r.gradients, r.optimizer_state, r.activations, r.temporaries, r.total
            ))), "")
            for r in top
        ),
        empty="no modules",
    )  # fmt: skip
    chart = charts([memory_chart(m)]) if with_charts and m.peak else ""
    return head + chart + kinds + modules + notes(m.notes)


def bench_html(b: BenchResult) -> str:
    """Throughput of each mode, torchscope's harness beside the plain loop, then the table."""
    labels, values, grey = [], [], []
    for mode in b.modes:
        unit = mode.harness.unit
        labels.append(f"{mode.mode} (torchscope)")
        values.append(mode.harness.stats.img_s_median)
        grey.append(False)
        if mode.baseline is not None:
            labels.append(f"{mode.mode} (plain loop)")
            values.append(mode.baseline.stats.img_s_median)
            grey.append(True)
    unit = b.modes[0].harness.unit if b.modes else "images"
    chart = bar_chart_svg(values, labels=labels, greyed=grey, greyed_label="plain loop",
                          title=f"Throughput, median {unit}/s (higher is better)") if values else ""  # fmt: skip
    rows = [
        ([escape(mode.mode), count(mode.batch_size), num(mode.harness.stats.img_s_median),
          num(None if mode.baseline is None else mode.baseline.stats.img_s_median), num(mode.ratio),
          "–" if mode.check is None else ("✓ ok" if mode.check.ok else f"✗ {len(mode.check.violations)}")],
         "" if mode.check is None or mode.check.ok else "flag")
        for mode in b.modes
    ]  # fmt: skip
    return (
        f'<p class="sub">{escape(b.config.model)} on {escape(b.environment.device_name)}</p>'
        + (charts([chart]) if chart else "")
        + table([("mode", False), ("batch", True), (f"{unit}/s", True), ("plain loop", True), ("ratio", True),
                 ("freeze check", False)], rows, empty="No mode ran.")
    )  # fmt: skip
