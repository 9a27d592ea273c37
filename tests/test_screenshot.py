"""The HTML report renders in a real browser: a headless Chromium screenshot, checked pixel by pixel.

Needs Chromium (Debian: ``apt-get install -y chromium``); skipped with that hint when it is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from zoo import build

import torchscope
from torchscope._report import collect_report
from torchscope.render._charts import COLOR_ACCENT, COLOR_FROZEN, COLOR_SECOND
from torchscope.render.html import render_html


def find_chromium() -> str | None:
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install -y chromium)"
)


def screenshot(html: Path, png: Path, profile: Path, *, width: int = 1200, height: int = 2400) -> None:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--screenshot={png}",
        html.resolve().as_uri(),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and png.is_file(), result.stderr[-2000:]


def rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@pytest.mark.slow  # spawns a process
def test_report_page_renders_with_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image", reason="Pillow (comes with torchvision) reads the PNG")
    model, x = build("small_cnn")
    torchscope.freeze(model, "backbone.0", "backbone.1")
    data = collect_report(model, input_size=tuple(x.shape), title="small_cnn")
    page = tmp_path / "report.html"
    page.write_text(render_html(data), encoding="utf-8")
    png = tmp_path / "report.png"
    screenshot(page, png, tmp_path / "profile")

    with image_mod.open(png) as im:
        assert im.size == (1200, 2400)
        colors = {c for _, c in im.convert("RGB").getcolors(maxcolors=1 << 20)}
    # The charts were drawn: the series colours and the grey of the frozen layers' grad bars.
    assert rgb(COLOR_ACCENT) in colors  # std line, trainable grad bars, params bars
    assert rgb(COLOR_SECOND) in colors  # fraction-of-zeros line
    assert rgb(COLOR_FROZEN) in colors  # frozen layers greyed
    # the failing verdict's red background (BatchNorm drift of the frozen layers in train mode)
    assert data.check_ok is False
    assert (253, 236, 234) in colors
    assert len(colors) > 200  # text is anti-aliased: a blank or unstyled page has far fewer
