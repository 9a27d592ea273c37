"""Terminal sparklines/bars and inline SVG charts: pure functions over floats."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from torchscope.render._charts import (
    COLOR_FROZEN,
    bar,
    bar_chart_svg,
    bars,
    format_number,
    hbar_chart_svg,
    line_chart_svg,
    sparkline,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """Every chart must be well-formed XML (it is inlined into the HTML report)."""
    return ET.fromstring(svg)


def test_sparkline_orders_values_from_lowest_to_highest_block() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([8, 1]) == "█▁"


def test_sparkline_marks_nonfinite_and_missing_values() -> None:
    assert sparkline([1.0, math.nan, None, math.inf, 2.0]) == "▁···█"
    assert sparkline([math.nan, math.nan]) == "··"
    assert sparkline([]) == ""


def test_sparkline_constant_series_is_flat_middle() -> None:
    assert sparkline([3, 3, 3]) == "▄▄▄"


def test_sparkline_log_scale_spreads_decades_evenly() -> None:
    # On a linear axis 1e-4..1e-2 collapse to the floor; on log they step evenly.
    assert sparkline([1e-4, 1e-3, 1e-2, 1.0]) == "▁▁▁█"
    assert sparkline([1e-4, 1e-3, 1e-2, 1.0], log=True) == "▁▃▅█"
    assert sparkline([0.0, 1e-2, 1.0], log=True) == "·▁█"


def test_bar_uses_eighths_and_pads_to_width() -> None:
    assert bar(10, 10, width=4) == "████"
    assert bar(5, 10, width=4) == "██  "
    assert bar(1, 16, width=2) == "▏ "
    assert bar(0, 10, width=3) == "   "
    assert bar(1e-9, 10, width=3) == "▏  "  # a tiny non-zero value never disappears
    assert bar(math.nan, 10, width=3) == "!  "
    assert bar(None, 10, width=3) == "   "  # no value: blank, unlike a non-finite one
    assert bar(20, 10, width=2) == "██"  # clipped at the maximum


def test_bar_rejects_zero_width() -> None:
    with pytest.raises(ValueError, match="width=0 must be >= 1"):
        bar(1, 1, width=0)


def test_bars_share_one_scale() -> None:
    assert bars([1, 2, 4], width=4) == ["█   ", "██  ", "████"]
    assert bars([], width=4) == []
    assert bars([0, 0], width=2) == ["  ", "  "]


def test_bars_log_scale_shows_ratios_and_marks_zero_and_nan() -> None:
    out = bars([1e-6, 1e-3, 1.0, 0.0, math.nan, None], width=6, log=True)
    assert out[0] == "▏     "  # smallest positive value: shortest visible bar
    assert out[2] == "██████"
    assert 2 <= len(out[1].rstrip()) <= 4  # the middle decade in the middle
    assert out[3] == "      "
    assert out[4] == "!     "
    assert out[5] == "      "
    assert all(len(b) == 6 for b in out)


@pytest.mark.parametrize(
    ("value", "text"),
    [(11689512, "11.7 M"), (25557032, "25.6 M"), (1500, "1.5 K"), (0.25, "0.25"), (4.5e-5, "4.5e-05"),
     (0, "0"), (math.nan, "nan"), (-math.inf, "-inf"), (None, "–"), (3e9, "3.0 G")],
)
def test_format_number(value: float | None, text: str) -> None:
    assert format_number(value) == text


def test_line_chart_one_point_per_value_with_tooltips() -> None:
    svg = line_chart_svg(
        [("std", [1.0, 0.5, 0.25]), ("zeros", [0.0, 0.5, 0.9])],
        labels=["conv1", "layer1", "layer2"],
        title="Activations by depth",
    )
    root = parse(svg)
    circles = root.findall(f"{SVG}circle")
    assert len(circles) == 6
    tips = [c.find(f"{SVG}title").text for c in circles]  # type: ignore[union-attr]
    assert "layer1: std = 0.5" in tips
    assert "layer2: zeros = 0.9" in tips
    assert root.find(f"{SVG}title").text == "Activations by depth"  # type: ignore[union-attr]
    # two series: two legend entries
    assert "std" in svg and "zeros" in svg


def test_line_chart_breaks_the_line_at_nan_and_flags_it() -> None:
    svg = line_chart_svg([("std", [1.0, 2.0, math.nan, 3.0, 4.0])], labels=list("abcde"), title="t")
    root = parse(svg)
    assert len(root.findall(f"{SVG}polyline")) == 2
    assert len(root.findall(f"{SVG}circle")) == 4
    assert "c: std = nan" in svg


def test_line_chart_log_axis_labels_decades() -> None:
    svg = line_chart_svg([("std", [1e-3, 1e-1, 10.0])], labels=["a", "b", "c"], title="t", log=True)
    parse(svg)
    for decade in ("1e-3", "1e-1", "1e1"):
        assert f">{decade}<" in svg


def test_line_chart_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="series 'std' has 2 values for 3 labels"):
        line_chart_svg([("std", [1.0, 2.0])], labels=["a", "b", "c"], title="t")


def test_empty_charts_say_no_data() -> None:
    for svg in (
        line_chart_svg([], labels=[], title="t"),
        bar_chart_svg([], labels=[], title="t"),
        hbar_chart_svg([], labels=[], title="t"),
    ):
        assert ">no data<" in svg
        parse(svg)


def test_bar_chart_greys_frozen_columns() -> None:
    svg = bar_chart_svg(
        [0.5, 0.0, 2.0], labels=["conv1", "layer1", "fc"], title="grad norm", greyed=[True, True, False], log=True
    )
    root = parse(svg)
    rects = [r for r in root.findall(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(rects) == 3
    fills = [r.get("fill") for r in rects]
    assert fills[0] == COLOR_FROZEN and fills[1] == COLOR_FROZEN and fills[2] != COLOR_FROZEN
    tips = [r.find(f"{SVG}title").text for r in rects]  # type: ignore[union-attr]
    assert tips == ["conv1: 0.5 (frozen)", "layer1: 0 (frozen)", "fc: 2"]
    # the taller column is the larger value
    heights = [float(r.get("height")) for r in rects]  # type: ignore[arg-type]
    assert heights[2] > heights[0] > heights[1]
    assert ">frozen<" in svg


def test_bar_chart_escapes_labels() -> None:
    svg = bar_chart_svg([1.0], labels=["<script>&"], title="a<b")
    parse(svg)
    assert "<script>" not in svg
    assert "&lt;script&gt;&amp;" in svg


def test_bar_chart_marks_nonfinite_value() -> None:
    svg = bar_chart_svg([1.0, math.inf], labels=["a", "b"], title="t")
    parse(svg)
    assert "b: inf" in svg
    assert 'stroke-dasharray="3 2"' in svg


def test_hbar_chart_widths_are_proportional_and_shares_printed() -> None:
    svg = hbar_chart_svg([300, 100, 0], labels=["backbone", "neck", "head"], title="Params by block")
    root = parse(svg)
    rects = [r for r in root.findall(f"{SVG}rect") if r.get("class") == "bar"]
    widths = [float(r.get("width")) for r in rects]  # type: ignore[arg-type]
    assert widths[0] == pytest.approx(3 * widths[1], rel=1e-3)
    assert widths[2] == 0.0
    assert "75.0%" in svg and "25.0%" in svg and "0.0%" in svg


def test_grads_table_has_a_log_scale_bar_beside_each_grad_norm() -> None:
    from rich.console import Console

    from torchscope._grads import GradReport, LayerGrad
    from torchscope.render.stats import render_grads

    layers = (
        LayerGrad("conv", "Conv2d", 224, 0, None, 1.65, None, None),
        LayerGrad("mid", "Conv2d", 584, 584, 0.001, 1.69, 0.0006, None),
        LayerGrad("fc", "Linear", 27, 27, 1.0, 0.8, 1.25, None),
    )
    report = GradReport("Net", "cross_entropy", 1.1, "train", layers, (), 224, 611, ())
    console = Console(width=100, color_system=None, record=True)
    console.print(render_grads(report, grad_bar=True))
    lines = console.export_text().splitlines()
    auto_wide = Console(width=100, color_system=None, record=True)
    auto_wide.print(render_grads(report))
    assert auto_wide.export_text().splitlines() == lines
    narrow = Console(width=80, color_system=None, record=True)
    narrow.print(render_grads(report))
    assert narrow.export_text().splitlines()[0].split() == [
        "Layer", "(type)", "Params", "Trainable", "Grad", "norm", "Param", "norm", "Ratio", "Flag"
    ]
    assert "█" not in narrow.export_text()
    assert lines[0] == "Layer (type)    Params   Trainable   Grad norm                Param norm    Ratio   Flag"
    assert lines[2] == "conv (Conv2d)      224           0           -                      1.65        -       "
    assert lines[3] == "mid (Conv2d)       584         584       0.001   ▏                  1.69   0.0006       "
    assert lines[4] == "fc (Linear)         27          27           1   ██████████          0.8     1.25       "


def _activation_report() -> object:
    from torchscope._record import ActivationCall, ActivationReport, TensorStats

    def call(module: str, type_: str, std: float, zeros: float) -> ActivationCall:
        stats = TensorStats(0.0, std, -std, std, std, zeros, 0, 0)
        return ActivationCall(0, module, type_, 0, "output", (2, 4), "float32", stats)

    calls = (call("0", "Linear", 1.0, 0.0), call("1", "ReLU", 0.01, 0.5), call("2", "Linear", 0.1, 0.0))
    return ActivationReport(calls, 1, ("0", "1", "2"), ())


def test_activations_table_std_bar_column() -> None:
    from rich.console import Console

    from torchscope.render.activations import render_activations

    def lines(width: int, std_bar: bool | None) -> list[str]:
        console = Console(width=width, color_system=None, record=True)
        console.print(render_activations(_activation_report(), std_bar=std_bar))  # type: ignore[arg-type]
        return console.export_text().splitlines()

    with_bar = lines(100, True)
    assert with_bar[0] == "Module  Type    Shape   Mean   Std              Min   Max  Zeros  Flags"
    assert with_bar[2] == "0       Linear  [2, 4]     0     1  ████████     -1     1     0%       "
    assert with_bar[3] == "1       ReLU    [2, 4]     0  0.01  ▏         -0.01  0.01    50%       "
    assert with_bar[4] == "2       Linear  [2, 4]     0   0.1  ████       -0.1   0.1     0%       "
    assert lines(100, False)[0] == "Module  Type    Shape   Mean   Std    Min   Max  Zeros  Flags"
    # auto: the bar only when it fits the width
    assert lines(100, None) == with_bar
    # at 60 columns: no bar, and the table (61 wide) leaves out Min rather than squeeze a cell
    narrow = lines(60, None)
    assert narrow[0] == "Module  Type    Shape   Mean   Std   Max  Zeros  Flags"
    assert "left out at 60 columns: Min (in --json)" in narrow
