"""Charts as text: terminal sparklines and bars, and inline SVG for the HTML report.

Pure functions over lists of floats. No torch, no Rich, no I/O: the renderers and the HTML page
call them with numbers a collector already brought to the host.

Values that are not finite (NaN, inf) or missing (``None``) never raise: a sparkline shows them as
``·``, a bar as ``!``, and SVG charts leave a gap and say so in the tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

from torchscope._format import format_si

SPARK_CHARS = "▁▂▃▄▅▆▇█"
# Left-aligned eighth blocks, from one eighth to a full cell.
BAR_EIGHTHS = "▏▎▍▌▋▊▉█"
MISSING_SPARK = "·"
MISSING_BAR = "!"

# The palette of the HTML report; kept here so the charts and the page agree.
COLOR_ACCENT = "#3b6fd8"
COLOR_SECOND = "#d8793b"
COLOR_FROZEN = "#b8bec8"
COLOR_GRID = "#e3e6eb"
COLOR_TEXT = "#30343b"
COLOR_MUTED = "#6b7280"

Number = float | int | None


def _finite(v: Number) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def _scaled(values: Sequence[Number], *, log: bool) -> list[float | None]:
    """Finite values mapped to the axis: log10 for ``log`` (non-positive values become missing)."""
    out: list[float | None] = []
    for v in values:
        if not _finite(v):
            out.append(None)
        elif log:
            out.append(math.log10(float(v)) if float(v) > 0 else None)  # type: ignore[arg-type]
        else:
            out.append(float(v))  # type: ignore[arg-type]
    return out


def sparkline(values: Sequence[Number], *, log: bool = False) -> str:
    """One character per value, from ▁ (smallest) to █ (largest); ``·`` for NaN/inf/None.

    ``log=True`` scales by log10 (for grad norms and std, which span decades); a value <= 0 then
    counts as missing.

    >>> sparkline([1, 2, 3, 4, 5, 6, 7, 8])
    '▁▂▃▄▅▆▇█'
    >>> sparkline([0.001, 0.01, 0.1, float("nan")], log=True)
    '▁▅█·'
    """
    scaled = _scaled(values, log=log)
    finite = [v for v in scaled if v is not None]
    if not finite:
        return MISSING_SPARK * len(scaled)
    lo, hi = min(finite), max(finite)
    top = len(SPARK_CHARS) - 1
    chars = []
    for v in scaled:
        if v is None:
            chars.append(MISSING_SPARK)
        elif hi == lo:
            chars.append(SPARK_CHARS[top // 2])
        else:
            chars.append(SPARK_CHARS[round((v - lo) / (hi - lo) * top)])
    return "".join(chars)


def bar(value: Number, maximum: float, *, width: int = 10, minimum: float = 0.0) -> str:
    """A horizontal bar of ``width`` cells for ``value`` on the scale ``minimum..maximum``.

    Eighth blocks give sub-cell resolution; the result is padded to ``width`` so columns line up.
    A value that is not finite gives ``!`` (it must stand out, not vanish); ``None`` gives blanks.

    >>> bar(5, 10, width=4)
    '██  '
    >>> bar(1, 8, width=1)
    '▏'
    >>> bar(float("inf"), 10, width=3)
    '!  '
    """
    if width < 1:
        raise ValueError(f"width={width} must be >= 1")
    if value is None:
        return " " * width  # no value (a frozen layer's grad): nothing to draw
    if not _finite(value):
        return MISSING_BAR.ljust(width)
    span = maximum - minimum
    frac = 0.0 if span <= 0 else (float(value) - minimum) / span  # type: ignore[arg-type]
    frac = min(max(frac, 0.0), 1.0)
    eighths = round(frac * width * 8)
    if eighths == 0 and frac > 0:
        eighths = 1  # a non-zero value always shows
    full, rest = divmod(eighths, 8)
    text = "█" * full + (BAR_EIGHTHS[rest - 1] if rest else "")
    return text.ljust(width)


def bars(values: Sequence[Number], *, width: int = 10, log: bool = False) -> list[str]:
    """Bars for a whole column, on one shared scale (log10 when ``log``).

    On a log scale the smallest finite positive value gets the shortest visible bar, so that the
    column shows ratios between layers; values <= 0 and None show as empty cells, NaN/inf as ``!``.

    >>> bars([1, 2, 4], width=4)
    ['█   ', '██  ', '████']
    >>> bars([0.001, 1.0, float("nan")], width=3, log=True)
    ['▏  ', '███', '!  ']
    """
    scaled = _scaled(values, log=log)
    finite = [v for v in scaled if v is not None]
    out: list[str] = []
    if log:
        lo = min(finite) if finite else 0.0
        hi = max(finite) if finite else 1.0
        # One eighth of a cell below the smallest value, so the smallest still shows.
        floor = lo - (hi - lo) / (width * 8 - 1) if hi > lo else lo - 1.0
        for raw, v in zip(values, scaled, strict=True):
            if raw is None:
                out.append(" " * width)
            elif not _finite(raw):
                out.append(MISSING_BAR.ljust(width))
            elif v is None:
                out.append(" " * width)
            else:
                out.append(bar(v, hi, width=width, minimum=floor))
        return out
    hi = max((abs(v) for v in finite), default=0.0)
    for raw in values:
        out.append(bar(abs(float(raw)) if _finite(raw) else raw, hi, width=width))  # type: ignore[arg-type]
    # None stays blank, NaN/inf show "!": see bar()
    return out


# ---------------------------------------------------------------------------------------------
# SVG


def format_number(v: Number, *, digits: int = 3) -> str:
    """A short human label: 11.7 M (counts in the one short form), 4.5e-05, 0.25, nan.

    >>> format_number(11689512), format_number(0.000045), format_number(0.25), format_number(None)
    ('11.7 M', '4.5e-05', '0.25', '–')
    """
    if v is None:
        return "–"
    x = float(v)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    a = abs(x)
    if a >= 1000:
        return format_si(x, decimals=None)
    if a != 0 and a < 1e-3:
        return f"{x:.{max(digits - 1, 1)}g}"
    return f"{x:.{digits}g}"


def _nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering lo..hi (linear axis)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 12))
        t += step
    return ticks


def _axis(values: Sequence[float | None], *, log: bool, zero: bool) -> tuple[float, float, list[float]]:
    """(low, high, ticks) of the y axis in axis units (log10 units when ``log``)."""
    finite = [v for v in values if v is not None]
    if not finite:
        return 0.0, 1.0, [0.0, 1.0]
    lo, hi = min(finite), max(finite)
    if log:
        lo, hi = math.floor(lo), math.ceil(hi)
        if hi == lo:
            hi = lo + 1
        step = max(1, math.ceil((hi - lo) / 5))
        return float(lo), float(hi), [float(t) for t in range(int(lo), int(hi) + 1, step)]
    if zero:
        lo = min(lo, 0.0)
        hi = max(hi, 0.0)
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    ticks = _nice_ticks(lo, hi)
    return min(lo, ticks[0]), max(hi, ticks[-1]), ticks


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="16" font-size="13" font-weight="600" fill="{COLOR_TEXT}">{escape(title)}</text>',
    ]


def _y_grid(
    parts: list[str], ticks: list[float], *, y_of: Callable[[float], float], left: int, right: int, log: bool
) -> None:
    for t in ticks:
        y = y_of(t)
        label = f"1e{int(t)}" if log else format_number(t)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLOR_GRID}"/>')
        parts.append(
            f'<text x="{left - 4}" y="{y + 3.5:.1f}" text-anchor="end" fill="{COLOR_MUTED}">{escape(label)}</text>'
        )


def _empty_chart(title: str, width: int, height: int, message: str) -> str:
    parts = _svg_open(width, height, title)
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="{COLOR_MUTED}">'
        f"{escape(message)}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def line_chart_svg(
    series: Sequence[tuple[str, Sequence[Number]]],
    *,
    labels: Sequence[str],
    title: str,
    log: bool = False,
    y_label: str = "",
    width: int = 1040,
    height: int = 260,
    colors: Sequence[str] = (COLOR_ACCENT, COLOR_SECOND),
) -> str:
    """An inline SVG line chart: one polyline per ``(name, values)``, x = position in ``labels``.

    Used for activation std and fraction of zeros by depth. Each point carries a ``<title>``
    tooltip with its label and value; missing or non-finite values break the line.

    >>> svg = line_chart_svg([("std", [1.0, 0.5, 0.25])], labels=["a", "b", "c"], title="std by depth")
    >>> svg.startswith("<svg") and svg.count("<circle") == 3
    True
    """
    n = len(labels)
    for name, values in series:
        if len(values) != n:
            raise ValueError(f"series {name!r} has {len(values)} values for {n} labels")
    if n == 0:
        return _empty_chart(title, width, height, "no data")
    left, right, top, bottom = 56, width - 12, 40 if len(series) > 1 else 28, height - 34
    scaled = [(name, _scaled(values, log=log)) for name, values in series]
    lo, hi, ticks = _axis([v for _, vs in scaled for v in vs], log=log, zero=not log)

    def x_of(i: int) -> float:
        return left + (right - left) * (i + 0.5) / n

    def y_of(v: float) -> float:
        return bottom - (bottom - top) * (v - lo) / (hi - lo)

    parts = _svg_open(width, height, title)
    _y_grid(parts, ticks, y_of=y_of, left=left, right=right, log=log)
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{COLOR_MUTED}"/>')
    if y_label:
        parts.append(
            f'<text transform="translate(12,{(top + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle" '
            f'fill="{COLOR_MUTED}">{escape(y_label)}</text>'
        )
    # Label every k-th x position so the labels never overlap.
    k = _label_step(labels, right - left)
    for i in range(0, n, k):
        parts.append(
            f'<text x="{x_of(i):.1f}" y="{bottom + 14}" text-anchor="middle" fill="{COLOR_MUTED}">'
            f"{escape(_short(labels[i], 12))}</text>"
        )
    parts.append(
        f'<text x="{(left + right) / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="{COLOR_MUTED}">'
        "depth (modules in forward order)</text>"
    )
    for si, ((name, values), (_, svals)) in enumerate(zip(series, scaled, strict=True)):
        color = colors[si % len(colors)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(svals):
            if v is None:
                if segment:
                    segments.append(segment)
                segment = []
            else:
                segment.append(f"{x_of(i):.1f},{y_of(v):.1f}")
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(seg)}"/>'
            )
        for i, (raw, v) in enumerate(zip(values, svals, strict=True)):
            tip = escape(f"{labels[i]}: {name} = {format_number(raw)}")
            if v is None:
                parts.append(
                    f'<text x="{x_of(i):.1f}" y="{bottom - 4}" text-anchor="middle" fill="#c0392b">'
                    f"<title>{tip}</title>!</text>"
                )
            else:
                parts.append(
                    f'<circle cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="2.5" fill="{color}">'
                    f"<title>{tip}</title></circle>"
                )
        if len(series) > 1:
            lx = left + 8 + si * 150
            parts.append(f'<rect x="{lx}" y="22" width="10" height="10" fill="{color}"/>')
            parts.append(f'<text x="{lx + 14}" y="31" fill="{COLOR_TEXT}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart_svg(
    values: Sequence[Number],
    *,
    labels: Sequence[str],
    title: str,
    greyed: Sequence[bool] | None = None,
    greyed_label: str = "frozen",
    log: bool = False,
    width: int = 1040,
    height: int = 260,
    color: str = COLOR_ACCENT,
) -> str:
    """An inline SVG column chart, one column per label; ``greyed`` columns are drawn grey.

    Used for grad norm by layer with frozen layers greyed. On a ``log`` axis a value <= 0 (a frozen
    layer's zero grad) is drawn as a short grey stub at the floor so the layer stays visible.

    >>> svg = bar_chart_svg([0.5, 0.0], labels=["fc", "conv1"], title="grad norm", greyed=[False, True], log=True)
    >>> svg.count("<rect class=\\"bar") == 2
    True
    """
    n = len(labels)
    if len(values) != n:
        raise ValueError(f"{len(values)} values for {n} labels")
    greyed = list(greyed) if greyed is not None else [False] * n
    if len(greyed) != n:
        raise ValueError(f"{len(greyed)} greyed flags for {n} labels")
    if n == 0:
        return _empty_chart(title, width, height, "no data")
    left, right, top, bottom = 56, width - 12, 40, height - 34
    scaled = _scaled(values, log=log)
    lo, hi, ticks = _axis(scaled, log=log, zero=not log)

    def y_of(v: float) -> float:
        return bottom - (bottom - top) * (v - lo) / (hi - lo)

    parts = _svg_open(width, height, title)
    _y_grid(parts, ticks, y_of=y_of, left=left, right=right, log=log)
    slot = (right - left) / n
    bar_w = max(1.0, slot * 0.8)
    base = y_of(lo) if log else y_of(0.0)
    for i, (raw, v) in enumerate(zip(values, scaled, strict=True)):
        x = left + slot * i + (slot - bar_w) / 2
        fill = COLOR_FROZEN if greyed[i] else color
        tip = escape(f"{labels[i]}: {format_number(raw)}" + (f" ({greyed_label})" if greyed[i] else ""))
        if v is None:
            if raw is None or _finite(raw):
                # no grad (None), or zero on a log axis: a grey stub at the floor
                parts.append(
                    f'<rect class="bar" x="{x:.1f}" y="{bottom - 2}" width="{bar_w:.1f}" height="2" '
                    f'fill="{COLOR_FROZEN}"><title>{tip}</title></rect>'
                )
            else:
                parts.append(
                    f'<rect class="bar" x="{x:.1f}" y="{top}" width="{bar_w:.1f}" height="{bottom - top}" '
                    f'fill="none" stroke="#c0392b" stroke-dasharray="3 2"><title>{tip}</title></rect>'
                )
            continue
        y = y_of(v)
        y0, h = (y, base - y) if y <= base else (base, y - base)
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" height="{max(h, 1.0):.1f}" '
            f'fill="{fill}"><title>{tip}</title></rect>'
        )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{COLOR_MUTED}"/>')
    k = _label_step(labels, right - left)
    for i in range(0, n, k):
        x = left + slot * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" fill="{COLOR_MUTED}">'
            f"{escape(_short(labels[i], 12))}</text>"
        )
    parts.append(f'<rect x="{left + 8}" y="22" width="10" height="10" fill="{color}"/>')
    parts.append(f'<text x="{left + 22}" y="31" fill="{COLOR_TEXT}">trainable</text>')
    if any(greyed):
        parts.append(f'<rect x="{left + 98}" y="22" width="10" height="10" fill="{COLOR_FROZEN}"/>')
        parts.append(f'<text x="{left + 112}" y="31" fill="{COLOR_TEXT}">{escape(greyed_label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def hbar_chart_svg(
    values: Sequence[Number],
    *,
    labels: Sequence[str],
    title: str,
    width: int = 1040,
    row_height: int = 22,
    color: str = COLOR_ACCENT,
    value_suffix: str = "",
) -> str:
    """An inline SVG horizontal bar chart, one row per label, with the value and share printed.

    Used for params by top-level block.

    >>> svg = hbar_chart_svg([900, 100], labels=["backbone", "fc"], title="params")
    >>> "90.0%" in svg and "10.0%" in svg
    True
    """
    n = len(labels)
    if len(values) != n:
        raise ValueError(f"{len(values)} values for {n} labels")
    height = 32 + max(n, 1) * row_height + 8
    if n == 0:
        return _empty_chart(title, width, height, "no data")
    label_w = min(220, 12 + 7 * max(len(_short(lab, 30)) for lab in labels))
    left, right = label_w, width - 130
    finite = [abs(float(v)) for v in values if _finite(v)]  # type: ignore[arg-type]
    total = sum(finite)
    hi = max(finite, default=0.0) or 1.0
    parts = _svg_open(width, height, title)
    for i, (lab, raw) in enumerate(zip(labels, values, strict=True)):
        y = 32 + i * row_height
        v = abs(float(raw)) if _finite(raw) else 0.0  # type: ignore[arg-type]
        w = (right - left) * v / hi
        share = f"{100 * v / total:.1f}%" if total > 0 else "–"
        tip = escape(f"{lab}: {format_number(raw)}{value_suffix} ({share})")
        parts.append(
            f'<text x="{left - 6}" y="{y + row_height / 2 + 4:.1f}" text-anchor="end" fill="{COLOR_TEXT}">'
            f"{escape(_short(lab, 30))}</text>"
        )
        parts.append(
            f'<rect class="bar" x="{left}" y="{y + 3}" width="{max(w, 1.0 if v > 0 else 0.0):.1f}" '
            f'height="{row_height - 6}" fill="{color}"><title>{tip}</title></rect>'
        )
        parts.append(
            f'<text x="{left + w + 6:.1f}" y="{y + row_height / 2 + 4:.1f}" fill="{COLOR_MUTED}">'
            f"{escape(format_number(raw))}{escape(value_suffix)} · {share}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _label_step(labels: Sequence[str], span: float) -> int:
    """Show every k-th x label so that the (shortened) labels never overlap."""
    longest = max((len(_short(lab, 12)) for lab in labels), default=1)
    fits = max(1, int(span // (6.5 * longest + 10)))
    return max(1, math.ceil(len(labels) / fits))


def _short(text: str, limit: int) -> str:
    """Shorten long module names from the left: the end of a qualified name says the most."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


#: Colours of the parts of a stacked bar, in order (the memory kinds: parameters first).
STACK_COLORS = ("#3b6fd8", "#8fb0ee", "#d8793b", "#e9b07f", "#2f9e6e", "#b8bec8", "#9b6fd8")


def stacked_bar_svg(
    parts: Sequence[tuple[str, int | float]], *, title: str, width: int = 1040, height: int = 78
) -> str:
    """An inline SVG of one bar split into ``parts`` (label, value), with a legend of shares.

    >>> svg = stacked_bar_svg([("parameters", 3), ("activations", 1)], title="peak")
    >>> svg.count("<rect"), "parameters 75.0%" in svg  # two parts and their two legend swatches
    (4, True)
    """
    total = sum(v for _, v in parts if _finite(v) and v > 0)
    if total <= 0:
        return _empty_chart(title, width, height, "nothing to show")
    out = _svg_open(width, height, title)
    left, right, y, h = 8, width - 8, 26, 22
    x = float(left)
    legend = []
    for i, (label, value) in enumerate(p for p in parts if _finite(p[1]) and p[1] > 0):
        w = (right - left) * value / total
        color = STACK_COLORS[i % len(STACK_COLORS)]
        share = f"{label} {value / total:.1%}"
        out.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}" fill="{color}"><title>{escape(share)}</title></rect>'
        )
        legend.append((color, share))
        x += w
    lx = float(left)
    for color, share in legend:
        out.append(f'<rect x="{lx:.0f}" y="{y + h + 10}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14:.0f}" y="{y + h + 19}" fill="{COLOR_TEXT}">{escape(share)}</text>')
        lx += 24 + 6.5 * len(share)
    out.append("</svg>")
    return "\n".join(out)
