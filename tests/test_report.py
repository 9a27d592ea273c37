"""torchscope report: the collected ReportData and the self-contained HTML page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from torchscope._report import (
    ActivationRow,
    BlockRow,
    GradRow,
    ReportData,
    TreeRow,
    ViolationRow,
)
from torchscope.render._charts import COLOR_FROZEN
from torchscope.render.html import render_html

SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


def assert_self_contained(page: str) -> None:
    """Nothing in the page can make a browser fetch anything."""
    assert page.startswith("<!DOCTYPE html>")
    without_ns = page.replace(SVG_NS, "")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", without_ns, re.I), "a network URL in the page"
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src="):
        assert forbidden not in without_ns.lower(), forbidden


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, re.S)]


def handmade() -> ReportData:
    return ReportData(
        title="tiny<net>",
        model_type="Net",
        total_params=130,
        trainable_params=30,
        frozen_params=100,
        input_size=((2, 4),),
        mult_adds=260,
        blocks=(BlockRow("body", "Linear", 100, 0), BlockRow("head", "Linear", 30, 30)),
        modules=(TreeRow("", "Net", 0, 130, "partial", True), TreeRow("body", "Linear", 1, 100, "frozen", True)),
        activations=(
            ActivationRow("body", "Linear", "2×10", 0.1, 1.0, 0.0),
            ActivationRow("act", "ReLU", "2×10", 0.4, 0.5, 0.95, ("dead",)),
        ),
        grads=(GradRow("body", "Linear", None, True), GradRow("head", "Linear", 0.25, False)),
        check_ok=False,
        checks=("trainable params updated",),
        violations=(ViolationRow("frozen_buffer_changed", "bn.running_mean", 0.5, "BatchNorm in train mode <fix>"),),
    )


def test_page_from_plain_data_is_self_contained_and_escaped() -> None:
    page = render_html(handmade())
    assert_self_contained(page)
    assert "<title>torchscope report: tiny&lt;net&gt;</title>" in page
    assert "BatchNorm in train mode &lt;fix&gt;" in page
    assert "✗ 1 violation(s)" in page
    assert '<span class="tag flag">dead</span>' in page


def test_page_has_the_four_charts_and_greys_frozen_layers() -> None:
    page = render_html(handmade())
    charts = svgs(page)
    titles = [c.find("{http://www.w3.org/2000/svg}title").text for c in charts]  # type: ignore[union-attr]
    assert titles == [
        "Activation std by depth (log scale)",
        "Fraction of zeros by depth",
        "Grad norm by layer (log scale; frozen layers grey)",
        "Params by top-level block",
    ]
    grad_chart = charts[2]
    bars = [r for r in grad_chart.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "bar"]
    assert [b.get("fill") == COLOR_FROZEN for b in bars] == [True, False]


def test_page_without_optional_sections_says_what_is_missing() -> None:
    page = render_html(ReportData(title="m", model_type="M", total_params=0, trainable_params=0, frozen_params=0,
                                  notes=("summary skipped: no --input-size",)))
    assert_self_contained(page)
    assert "Freeze check not run." in page
    assert "No chart: nothing was collected." in page
    assert "summary skipped: no --input-size" in page


def test_report_data_to_dict_is_plain_json() -> None:
    import json

    d = json.loads(json.dumps(handmade().to_dict()))
    assert d["grads"][0] == {"name": "body", "type": "Linear", "norm": None, "frozen": True, "flags": []}
    assert d["violations"][0]["kind"] == "frozen_buffer_changed"
    assert d["input_size"] == [[2, 4]]
