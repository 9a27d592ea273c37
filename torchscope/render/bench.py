"""Rich views of a :class:`~torchscope._bench.schema.BenchResult`: the report and a two-file comparison
(the progress bar shown while it runs is :mod:`torchscope.render.progress`'s). No torch import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from torchscope._format import format_bytes, format_si
from torchscope.render._charts import sparkline
from torchscope.render._fit import fitted

if TYPE_CHECKING:
    from torchscope._bench.schema import BenchResult, ModeResult

#: Above this spread (percent) the report says that the figures are noisy.
NOISY_SPREAD_PCT = 10.0


def fmt_flops(n: float) -> str:
    """FLOPs with an SI unit: ``4.1e9`` -> ``'4.10 GFLOP'``.

    >>> fmt_flops(4.1e9), fmt_flops(12.0)
    ('4.10 GFLOP', '12 FLOP')
    """
    return format_si(n, "FLOP")


def fmt_rate(x: float) -> str:
    """img/s with sensible precision: 3 significant digits at least, no exponent.

    >>> fmt_rate(5123.4), fmt_rate(41.26), fmt_rate(3.456)
    ('5123', '41.3', '3.46')
    """
    if x >= 1000:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_tflops(tflops: float) -> str:
    """A FLOP rate given in TFLOP/s, in GFLOP/s below 1 TFLOP/s (CPU figures).

    >>> fmt_tflops(312.0), fmt_tflops(0.0505)
    ('312 TFLOP/s', '50.5 GFLOP/s')
    """
    if tflops >= 1:
        return f"{tflops:.3g} TFLOP/s"
    return f"{tflops * 1000:.3g} GFLOP/s"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage; None -> ``'-'``."""
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _ratio_text(m: ModeResult) -> Text:
    # the verdict is the result's (ratio_ok), so the mark shown and the exit code cannot disagree
    if m.ratio is None:
        return Text("-")
    ok = bool(m.ratio_ok)
    return Text(f"{m.ratio:.3f} {'✓' if ok else '✗'}", style="green" if ok else "yellow")


def _mfu_text(m: ModeResult) -> str:
    e = m.efficiency
    if e.mfu is None:
        return "-"
    if e.basis == "datasheet":
        return f"{fmt_pct(e.mfu)} of {e.datasheet_key} {e.compute_dtype} {e.datasheet_peak_tflops:g} TFLOP/s (datasheet)"
    return f"{fmt_pct(e.mfu)} of {fmt_tflops(e.measured_peak_tflops or 0.0)} (matmul measured)"


def _memory_text(m: ModeResult) -> str:
    mem = m.memory
    if mem.peak_allocated_bytes is not None:
        return f"{_bytes(mem.peak_allocated_bytes)} alloc / {_bytes(mem.peak_reserved_bytes)} reserved"
    return f"{_bytes(mem.peak_rss_bytes)} RSS"


def _bytes(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)


def _check_text(m: ModeResult, short: bool = False) -> Text:
    text = _step_check_text(m, short)
    guard = None if m.check is None else m.check.guard
    if guard is None or short:
        return text
    if guard["ok"]:
        text.append("; guard: frozen unchanged over the whole run", style="green")
    else:
        text.append(f"; guard: {len(guard['violations'])} frozen tensor(s) changed during the run", style="bold red")
    return text


def _step_check_text(m: ModeResult, short: bool = False) -> Text:
    if m.check is None:
        return Text("not run")
    if m.check.ok:
        if short:
            return Text("✓ ok", style="green")
        frozen, trainable = m.check.report.get("frozen_params"), m.check.report.get("trainable_params")
        if not frozen:
            return Text(f"✓ all {trainable} tensors updated", style="green")
        return Text(f"✓ {frozen} frozen tensors unchanged, {trainable} updated", style="green")
    return Text(f"✗ {len(m.check.violations)} violation(s)", style="bold red")


def _rate_label(modes: Sequence[ModeResult]) -> str:
    """The throughput's unit: tokens/s for a language model, img/s otherwise."""
    return "tokens/s" if any(m.harness.unit == "tokens" for m in modes) else "img/s"


def _rows(modes: Sequence[ModeResult]) -> list[tuple[str, list[RenderableType]]]:
    rows: list[tuple[str, list[RenderableType]]] = []
    rate = _rate_label(modes)

    def row(label: str, fn: Callable[[ModeResult], RenderableType]) -> None:
        rows.append((label, [fn(m) for m in modes]))

    row(
        "batch size",
        lambda m: str(m.batch_size) + (f" (auto, {len(m.batch_search)} trials)" if m.batch_search else ""),
    )
    row("trainable params", lambda m: f"{m.trainable_params:,} of {m.total_params:,}")
    row(
        f"{rate} (median)",
        lambda m: Text(
            f"{fmt_rate(m.harness.stats.img_s_median)}  (spread {m.harness.stats.spread_pct:.1f}%)",
            style="bold",
        ),
    )
    row(
        f"{rate} per window",
        lambda m: (
            f"{sparkline([m.harness.images_per_step * m.harness.steps_per_window / t for t in m.harness.window_s])}"
            f"  {fmt_rate(m.harness.stats.img_s_min)}–{fmt_rate(m.harness.stats.img_s_max)}"
        ),
    )
    if any(m.baseline is not None for m in modes):
        row(
            f"baseline {rate}", lambda m: "-" if m.baseline is None else fmt_rate(m.baseline.stats.img_s_median)
        )
        row("torchscope / baseline", _ratio_text)
    row(
        "step ms p50 / p90",
        lambda m: f"{m.harness.stats.step_ms_p50:.1f} / {m.harness.stats.step_ms_p90:.1f}",
    )
    row(
        "warm-up",
        lambda m: (
            f"{len(m.warmup.step_s)} steps, first {m.warmup.first_step_s:.2f} s"
            + (f", compile {m.warmup.compile_s:.1f} s" if m.warmup.compile_s is not None else "")
        ),
    )
    row("FLOPs / step", lambda m: fmt_flops(m.efficiency.flops_per_step))
    row("achieved", lambda m: fmt_tflops(m.efficiency.tflops))
    row("MFU", _mfu_text)
    row("peak memory", _memory_text)
    if any(m.distributed is not None for m in modes):
        row(f"global {rate}", lambda m: "-" if m.distributed is None else fmt_rate(m.distributed.global_img_s))
        row(
            f"per-rank {rate}",
            lambda m: (
                "-" if m.distributed is None else " ".join(fmt_rate(x) for x in m.distributed.per_rank_img_s)
            ),
        )
        row(
            f"single-process {rate}",
            lambda m: "-" if m.distributed is None else fmt_rate(m.distributed.single_img_s),
        )
        row(
            "scaling efficiency",
            lambda m: "-" if m.distributed is None else fmt_pct(m.distributed.scaling_efficiency),
        )
    row("freeze check", _check_text)
    return rows


def _environment_table(result: BenchResult) -> Table:
    env, cfg = result.environment, result.config
    table = Table(show_header=False, box=None, pad_edge=False, title="environment", title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    versions = f"torch {env.torch}, torchvision {env.torchvision}"
    if env.cuda:
        versions += f", CUDA {env.cuda}"
    if env.cudnn:
        versions += f", cuDNN {env.cudnn}"
    items: list[tuple[str, str]] = [
        ("device", f"{env.device} ({env.device_name})"),
        ("versions", f"{versions}, Python {env.python}"),
        ("threads", f"{env.threads} intra-op, {env.interop_threads} inter-op"),
        (
            "TF32",
            f"matmul {'on' if env.tf32_matmul else 'off'}, cuDNN {'on' if env.tf32_cudnn else 'off'} "
            f"(float32 matmul precision {env.float32_matmul_precision}); cudnn.benchmark {'on' if env.cudnn_benchmark else 'off'}",
        ),
        ("dtype", f"{env.compute_dtype} (amp {cfg.amp})"),
        ("memory format", env.memory_format),
        ("compile", env.compile),
        (
            "input",
            f"batch {cfg.batch_size}{' per process' if env.world_size > 1 else ''}, "
            + (
                f"{cfg.seq_len} tokens ({cfg.token_dtype} ids below the vocab size, from seed {cfg.seed}), "
                "all-ones mask, on the device"
                if cfg.seq_len is not None
                else f"{cfg.image_size}x{cfg.image_size}, {cfg.num_classes} classes, "
                + (f"ImageFolder {cfg.data} ({cfg.workers} workers)" if cfg.data else "synthetic, on the device")
            ),
        ),
        (
            "optimizer",
            f"{cfg.optimizer} lr {cfg.lr:g}, "
            + ("the model's own loss (next-token, or cross-entropy on random labels)" if cfg.seq_len else "cross-entropy"),
        ),
        (
            "timing",
            f"{cfg.windows} windows x {cfg.steps} steps per loop, interleaved with the baseline"
            if cfg.baseline
            else f"{cfg.windows} windows x {cfg.steps} steps",
        ),
    ]
    if env.world_size > 1:
        items.append(("distributed", f"DDP, {env.world_size} processes, {env.backend}"))
    if result.matmul_peak is not None:
        p = result.matmul_peak
        items.append(("matmul peak", f"{fmt_tflops(p.tflops)} ({p.dtype}, {p.n}x{p.n}, best of {p.reps})"))
    for key, value in items:
        table.add_row(key, value)
    return table


def render_bench(result: BenchResult) -> RenderableType:
    """The report: one column per mode, the violations if any, then the environment block."""
    modes = result.modes
    cfg, env = result.config, result.environment
    title = (
        f"torchscope bench · {cfg.model} · {env.device_name} · {env.compute_dtype} · "
        f"{env.memory_format} · {'compiled ' + env.compile if env.compile != 'off' else 'eager'}"
    )
    table = Table(show_lines=False)
    table.add_column("")
    for m in modes:
        table.add_column(m.mode)
    for label, cells in _rows(modes):
        table.add_row(label, *cells)
    # a line of its own: a table title would wrap to the table's width
    # each mode's cells are prose (wrapping between words); a word, number or name is never split
    parts: list[RenderableType] = [Text(title, style="bold"), fitted(table, wrap=tuple(m.mode for m in modes))]
    for m in modes:
        if m.check is not None and not m.check.ok:
            lines = Text(f"freeze invariants violated in {m.mode} mode:\n", style="bold red")
            for v in m.check.violations:
                lines.append(f"  ✗ {v}\n", style="red")
            parts.append(lines)
        if m.check is not None and m.check.guard is not None and not m.check.guard["ok"]:
            lines = Text(f"the freeze guard saw frozen tensors change during the {m.mode} run:\n", style="bold red")
            for v in m.check.guard["violations"]:
                lines.append(f"  ✗ {v['kind']} {v['name']}: {v['cause']}\n", style="red")
            parts.append(lines)
    noisy = [m for m in modes if m.harness.stats.spread_pct > NOISY_SPREAD_PCT]
    if noisy:
        worst = max(m.harness.stats.spread_pct for m in noisy)
        parts.append(
            Text(
                f"note: windows differ by up to {worst:.0f}% (spread); the machine is busy or the windows are short. "
                "Compare ratios rather than absolute figures, or use more --window-steps and --windows.",
                style="yellow",
            )
        )
    timer = "CUDA events" if env.device.startswith("cuda") else "perf_counter"
    parts.append(
        Text(
            f"windows timed with {timer}, synchronised only at window edges; spread = (max - min) / median of the windows; "
            "torchscope / baseline = median over back-to-back window pairs; "
            f"MFU against {'the datasheet dense peak' if any(m.efficiency.basis == 'datasheet' for m in modes) else 'the matmul peak measured in this run'}.",
            style="dim",
        )
    )
    parts.append(_environment_table(result))
    return Group(*parts)


def _compare_metrics(m: ModeResult) -> list[tuple[str, float | None, bool, str]]:
    """(label, value, higher is better, format)."""
    e = m.efficiency
    mem = (
        m.memory.peak_allocated_bytes
        if m.memory.peak_allocated_bytes is not None
        else m.memory.peak_rss_bytes
    )
    rate = _rate_label([m])
    return [
        ("batch size", float(m.batch_size), True, "{:.0f}"),
        (f"{rate} (median)", m.harness.stats.img_s_median, True, "rate"),
        (f"baseline {rate}", None if m.baseline is None else m.baseline.stats.img_s_median, True, "rate"),
        ("torchscope / baseline", m.ratio, True, "{:.3f}"),
        ("step ms p50", m.harness.stats.step_ms_p50, False, "{:.1f}"),
        ("step ms p90", m.harness.stats.step_ms_p90, False, "{:.1f}"),
        ("GFLOP / step", e.flops_per_step / 1e9, False, "{:.4g}"),
        ("TFLOP/s", e.tflops, True, "{:.3g}"),
        ("MFU %", None if e.mfu is None else e.mfu * 100, True, "{:.2f}"),
        ("peak memory", None if mem is None else float(mem), False, "bytes"),
        (f"global {rate}", None if m.distributed is None else m.distributed.global_img_s, True, "rate"),
    ]


def _num(x: float | None, fmt: str) -> str:
    if x is None:
        return "-"
    if fmt == "bytes":
        return format_bytes(int(x))
    return fmt_rate(x) if fmt == "rate" else fmt.format(x)


def render_compare(a: BenchResult, b: BenchResult, labels: tuple[str, str] = ("A", "B")) -> RenderableType:
    """Two results side by side, per mode, with the ratio B/A; then what differs in their setups."""
    parts: list[RenderableType] = []
    names = [m.mode for m in a.modes if m.mode in {n.mode for n in b.modes}]
    if not names:
        parts.append(
            Text(
                f"no mode in common: {labels[0]} ran {[m.mode for m in a.modes]}, {labels[1]} ran {[m.mode for m in b.modes]}"
            )
        )
    for name in names:
        ma, mb = a.mode(name), b.mode(name)
        table = Table(title=f"{name} · {a.config.model} vs {b.config.model}", title_justify="left")
        table.add_column("")
        table.add_column(labels[0], justify="right")
        table.add_column(labels[1], justify="right")
        table.add_column(f"{labels[1]}/{labels[0]}", justify="right")
        for (label, va, higher, fmt), (_, vb, _, _) in zip(
            _compare_metrics(ma), _compare_metrics(mb), strict=True
        ):
            if va is None and vb is None:
                continue
            if va is None or vb is None or va == 0:
                ratio_cell = Text("-")
            else:
                r = vb / va
                better = r > 1 if higher else r < 1
                style = "" if abs(r - 1) < 0.02 else "green" if better else "red"
                ratio_cell = Text(f"{r:.3f}", style=style)
            table.add_row(label, _num(va, fmt), _num(vb, fmt), ratio_cell)
        table.add_row("freeze check", _check_text(ma, short=True), _check_text(mb, short=True), "")
        parts.append(fitted(table))
    diffs = Table(title="setup differences", title_justify="left", show_header=True)
    diffs.add_column("")
    diffs.add_column(labels[0])
    diffs.add_column(labels[1])
    da: dict[str, Any] = {**a.config.to_dict(), **a.environment.to_dict()}
    db: dict[str, Any] = {**b.config.to_dict(), **b.environment.to_dict()}
    for key in sorted(set(da) | set(db)):
        if da.get(key) != db.get(key):
            diffs.add_row(key, str(da.get(key)), str(db.get(key)))
    parts.append(fitted(diffs, wrap=labels) if diffs.row_count else Text("same setup in both files", style="dim"))
    return Group(*parts)
