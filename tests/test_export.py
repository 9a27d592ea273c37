"""Every command that renders a report takes --json, --console-html FILE, --svg FILE and --no-color.

All formats come from the same collected data: the collector runs once however many formats are
asked for, and the numbers in the JSON are the numbers in the HTML and SVG copies.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner
from zoo import SmallCNN

from torchscope.cli import app

ZOO = str(Path(__file__).parent / "zoo.py")
CNN = f"{ZOO}:SmallCNN"
SIZE = ["--input-size", "2,3,8,8"]
BENCH_TINY = ["--model", CNN, "--finetune", "frozen", "--device", "cpu", "-b", "2", "--image-size", "8",
              "--window-steps", "1", "--windows", "1", "--warmup", "1", "--no-baseline", "--no-progress"]  # fmt: skip
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Two state_dicts of SmallCNN: the second has only the head changed."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = SmallCNN()
    torch.save(model.state_dict(), d / "before.pt")
    with torch.no_grad():
        model.fc.weight.add_(0.5)
    torch.save(model.state_dict(), d / "after.pt")
    return str(d / "before.pt"), str(d / "after.pt")


# command -> (arguments, how --json is spelled, a string the JSON, HTML and SVG must all contain)
def commands(ckpt: tuple[str, str]) -> dict[str, tuple[list[str], list[str], Callable[[Any], str]]]:
    return {
        "tree": (["tree", CNN, "--freeze", "backbone"], ["--json"], lambda d: d["modules"][1]["name"]),
        "summary": (["summary", CNN, *SIZE], ["--json"], lambda d: d["rows"][1]["name"]),
        "activations": (["activations", CNN, *SIZE], ["--json"], lambda d: d["calls"][1]["module"]),
        "stats": (["stats", CNN], ["--json"], lambda d: d["params"][0]["name"] if "params" in d else d["rows"][0]["name"]),
        "grads": (["grads", CNN, *SIZE], ["--json"], lambda d: d["layers"][-1]["name"]),
        "check-freeze": (
            ["check-freeze", CNN, "--freeze", "backbone", "--eval-bn", *SIZE],
            ["--json"],
            lambda d: "all invariants hold" if d["ok"] else "violation",
        ),
        "diff": (["diff", ckpt[0], ckpt[1]], ["--json"], lambda d: f"{d['counts']['unchanged']} unchanged"),
        "bench": (["bench", *BENCH_TINY], ["--json", "-"], lambda d: d["modes"][0]["mode"]),
        "report": (
            ["report", CNN, *SIZE, "--freeze", "backbone", "--eval-bn", "--no-check"],
            ["--json"],
            lambda d: d["model_type"],
        ),
    }


NAMES = ["tree", "summary", "activations", "stats", "grads", "check-freeze", "diff", "bench", "report"]


def squash(text: str) -> str:
    # whitespace and a panel's side borders: a long name folds over lines inside a panel
    return re.sub(r"[\s│]+", "", text)


def svg_text(svg: str) -> str:
    """The visible text of a Rich SVG export (one <text> per run, spaces as &#160;)."""
    root = ET.fromstring(svg)
    return "".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")).replace("\xa0", " ")


@pytest.mark.parametrize("name", NAMES)
def test_every_rendering_command_exports_json_html_svg_and_plain_text(
    name: str, checkpoints: tuple[str, str], tmp_path: Path
) -> None:
    args, json_flag, key = commands(checkpoints)[name]
    runner = CliRunner()

    as_json = runner.invoke(app, [*args, *json_flag])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    needle = key(data)

    html = tmp_path / "out.html"
    svg = tmp_path / "out.svg"
    # (for `report`, --html is the report page itself; the others save a copy of the terminal view)
    plain = runner.invoke(
        app, [*args, "--console-html", str(html), "--svg", str(svg), "--no-color"], env={"COLUMNS": "160"}
    )
    assert plain.exit_code == 0, plain.output
    assert not ANSI.search(plain.stdout), "--no-color output has ANSI codes"
    # narrow terminals wrap long names inside table cells: compare without whitespace
    assert squash(needle) in squash(plain.stdout)

    page = html.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert squash(needle) in squash(re.sub(r"<[^>]+>", "", page).replace("&nbsp;", " ").replace("&#160;", " "))
    assert squash(needle) in squash(svg_text(svg.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    ("name", "collector"),
    [("summary", "torchscope._summary.summary"), ("grads", "torchscope._grads.grad_report"),
     ("report", "torchscope._report.collect_report")],
)  # fmt: skip
def test_formats_come_from_one_collection(
    name: str, collector: str, checkpoints: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module_name, attr = collector.rsplit(".", 1)
    module = importlib.import_module(module_name)
    original = getattr(module, attr)
    calls: list[int] = []

    def counting(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        return original(*a, **kw)

    monkeypatch.setattr(module, attr, counting)
    args, _, _ = commands(checkpoints)[name]
    result = CliRunner().invoke(
        app, [*args, "--console-html", str(tmp_path / "a.html"), "--svg", str(tmp_path / "a.svg"), "--no-color"]
    )
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
