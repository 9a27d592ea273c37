"""torchscope report: the collected ReportData and the self-contained HTML page."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import Result
from zoo import build

import torchscope
from torchscope._report import ReportData, collect_report
from torchscope.errors import SpecError
from torchscope.render._charts import COLOR_FROZEN
from torchscope.render.html import render_html

SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'

CliRun = Callable[..., Result]  # the `cli` fixture of conftest


def assert_self_contained(page: str) -> None:
    """Nothing in the page can make a browser fetch anything."""
    assert page.startswith("<!DOCTYPE html>")
    without_ns = page.replace(SVG_NS, "")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", without_ns, re.I), (
        "a network URL in the page"
    )
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src="):
        assert forbidden not in without_ns.lower(), forbidden


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, re.S)]


def handmade() -> ReportData:
    """A real report of a frozen backbone in train mode, with markup in the strings a user controls."""
    model, x = build("small_cnn")
    torchscope.freeze(model, "backbone")
    data = collect_report(model, input_size=tuple(x.shape), memory=False)
    assert data.check is not None and data.activations is not None
    first, *rest = data.check.violations
    check = replace(data.check, violations=(replace(first, cause="BatchNorm in train mode <fix>"), *rest))
    calls = list(data.activations.calls)
    relu = next(i for i, c in enumerate(calls) if c.type == "ReLU")
    calls[relu] = replace(calls[relu], flags=("dead",))
    return replace(data, title="tiny<net>", check=check, activations=replace(data.activations, calls=tuple(calls)))


def test_page_from_plain_data_is_self_contained_and_escaped() -> None:
    page = render_html(handmade())
    assert_self_contained(page)
    assert "<title>torchscope report: tiny&lt;net&gt;</title>" in page
    assert "BatchNorm in train mode &lt;fix&gt;" in page
    assert "✗ 6 violation(s)" in page
    assert '<span class="tag flag">dead</span>' in page


def test_page_has_the_four_charts_and_greys_frozen_layers() -> None:
    page = render_html(handmade())
    charts = svgs(page)
    titles = [c.find("{http://www.w3.org/2000/svg}title").text for c in charts]  # type: ignore[union-attr]
    assert titles == [
        "Activation std by depth (log scale)",
        "Fraction of zeros (dead units) by depth",
        "Update ratio by layer: grad norm / param norm (log scale; frozen layers grey)",
        "Params by top-level block",
    ]
    grad_chart = charts[2]
    bars = [r for r in grad_chart.iter("{http://www.w3.org/2000/svg}rect") if r.get("class") == "bar"]
    # backbone.0, .1, .3, .4 are frozen (their bars grey); the head fc trains
    assert [b.get("fill") == COLOR_FROZEN for b in bars] == [True, True, True, True, False]


def test_page_without_optional_sections_says_what_is_missing() -> None:
    data = handmade()
    page = render_html(
        replace(data, summary=None, activations=None, grads=None, check=None, notes=("summary skipped: no --input-size",))
    )
    assert_self_contained(page)
    assert "Freeze check not run." in page
    assert "No gradients recorded." in page
    assert "summary skipped: no --input-size" in page


def test_report_data_to_dict_is_plain_json() -> None:
    data = handmade()
    d = json.loads(json.dumps(data.to_dict(), allow_nan=False))
    # each part is the result its own function returns, under its own schema
    assert d["schema"] == "torchscope.report/2"
    assert [d[k]["schema"] for k in ("tree", "summary", "activations", "grads", "check")] == [
        "torchscope.tree/1", "torchscope.summary/1", "torchscope.activations/1", "torchscope.grads/1",
        "torchscope.check/1",
    ]
    assert d["grads"]["layers"][0]["name"] == "backbone.0" and d["grads"]["layers"][0]["grad_norm"] is None
    assert d["check"]["violations"][0]["kind"] == "frozen_buffer_changed"
    assert d["input_size"] == [[4, 3, 8, 8]]
    assert ReportData.from_dict(d) == data


# ---------------------------------------------------------------------------------------------
# collect_report: the collectors of torchscope on a real model

ZOO = str(Path(__file__).parent / "zoo.py")


def test_collect_report_frozen_backbone_in_train_mode_flags_batchnorm_drift() -> None:
    model, x = build("small_cnn")
    torchscope.freeze(model, "backbone")
    before = torchscope.capture_state(model)
    data = collect_report(model, input_size=tuple(x.shape), title="small")
    assert before.differences(torchscope.capture_state(model)) == []

    d = json.loads(json.dumps(data.to_dict()))
    assert (d["title"], d["model_type"]) == ("small", "SmallCNN")
    assert (d["total_params"], d["trainable_params"], d["frozen_params"]) == (867, 27, 840)
    assert d["input_size"] == [[4, 3, 8, 8]]
    blocks = [(m["name"], m["params"], m["trainable_params"]) for m in d["tree"]["modules"] if m["depth"] == 1]
    assert blocks == [("backbone", 840, 0), ("fc", 27, 27)]
    # grads: the frozen layers are there with no norm; the head has one
    grads = {g["name"]: g for g in d["grads"]["layers"]}
    assert grads["backbone.0"]["trainable"] == 0 and grads["backbone.0"]["grad_norm"] is None
    assert grads["fc"]["trainable"] == 27 and grads["fc"]["grad_norm"] > 0
    # activations in forward order
    names = [c["module"] for c in d["activations"]["calls"]]
    assert names[:3] == ["backbone.0", "backbone.1", "backbone.2"]
    relu = next(c for c in d["activations"]["calls"] if c["module"] == "backbone.2")
    assert 0 < relu["stats"]["zero_fraction"] < 1
    # the freeze check: BatchNorm running stats moved
    assert d["check_ok"] is False
    check = d["check"]
    assert {v["kind"] for v in check["violations"]} == {"frozen_buffer_changed"}
    assert {v["name"] for v in check["violations"]} >= {"backbone.1.running_mean", "backbone.4.running_var"}
    assert check["status"]["frozen_param_changed"] == "held" and check["status"]["frozen_buffer_changed"] == "violated"
    assert d["mult_adds"] > 0 and d["summary"]["rows"][0]["name"] == ""


def test_collect_report_with_frozen_norms_in_eval_passes_and_page_shows_it() -> None:
    model, x = build("small_cnn")
    torchscope.freeze(model, "backbone")
    data = collect_report(model, input_size=tuple(x.shape), train_bn=False)
    assert data.check_ok is True and data.check is not None and data.check.violations == ()
    page = render_html(data)
    assert_self_contained(page)
    assert "✓ every freeze invariant holds" in page
    assert len(svgs(page)) == 5  # std, zeros, update ratio, params by block, memory at the peak


def test_collect_report_needs_inputs_and_values() -> None:
    model, _ = build("small_cnn")
    with pytest.raises(SpecError, match=r"needs input_size \(e.g. \(1, 3, 224, 224\)\) or input_data"):
        collect_report(model)
    import torch

    with torch.device("meta"):
        meta = torch.nn.Linear(2, 2)
    with pytest.raises(SpecError, match=r"meta device .* load it on 'cpu'"):
        collect_report(meta, input_size=(1, 2))


def test_cli_report_writes_the_page_and_exits_1_on_a_violation(tmp_path: Path, cli: CliRun) -> None:
    page = tmp_path / "report.html"
    result = cli(
        *[
            "report",
            f"{ZOO}:SmallCNN",
            "--input-size",
            "4,3,8,8",
            "--freeze",
            "backbone",
            "--page",
            str(page),
            "--no-color",
        ]
    )
    assert result.exit_code == 1, result.output
    assert "✗ 6 violations: frozen_buffer_changed ×6" in result.output
    text = page.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert "backbone.1.running_mean" in text

    fixed = cli(
        *[
            "report",
            f"{ZOO}:SmallCNN",
            "--input-size",
            "4,3,8,8",
            "--freeze",
            "backbone",
            "--eval-bn",
            "--json",
        ]
    )
    assert fixed.exit_code == 0, fixed.output
    d = json.loads(fixed.output)
    assert d["check_ok"] is True and d["frozen_params"] == 840


def test_cli_report_bad_input_exits_2_with_one_line(tmp_path: Path, cli: CliRun) -> None:
    bad = cli(*["report", f"{ZOO}:SmallCNN", "--input-size", "0,3"])
    assert bad.exit_code == 2
    assert "--input-size '0,3' needs positive dimensions" in bad.output
    missing_folder = tmp_path / "no" / "r.html"
    unwritable = cli(
        *["report", f"{ZOO}:SmallCNN", "--input-size", "4,3,8,8", "--no-check", "--page", str(missing_folder)]
    )
    assert unwritable.exit_code == 2
    assert unwritable.stderr == (
        f"error: --page {str(missing_folder)!r}: folder {str(missing_folder.parent)!r} does not exist; "
        "create it or pick another path\n"
    )
    assert unwritable.stdout == ""


def test_cli_report_old_html_spelling_still_writes_the_page_with_a_deprecation_line(
    tmp_path: Path, cli: CliRun
) -> None:
    page = tmp_path / "old.html"
    args = ["report", f"{ZOO}:SmallCNN", "--input-size", "4,3,8,8", "--no-check", "--no-color"]
    result = cli(*[*args, "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert result.stderr == "warning: `--html` is deprecated and goes in the next release; write `--page` (the charted page)\n"
    assert_self_contained(page.read_text(encoding="utf-8"))
    both = cli(*[*args, "--html", str(page), "--page", str(page)])
    assert both.exit_code == 2 and "--html is the old spelling of --page; give --page only" in both.stderr


def test_cli_eval_bn_puts_frozen_norms_in_eval_and_drops_the_drift_warning(cli: CliRun) -> None:
    args = ["report", f"{ZOO}:SmallCNN", "--input-size", "4,3,8,8", "--freeze", "backbone", "--json"]
    drifting = json.loads(cli(*args).stdout)
    assert any(
        "backbone.1 (BatchNorm2d) has frozen params but is in train mode" in w["message"]
        for w in drifting["tree"]["warnings"]
    )
    fixed = json.loads(cli(*[*args, "--eval-bn"]).stdout)
    assert fixed["tree"]["warnings"] == []
    modes = {m["name"]: m["training"] for m in fixed["tree"]["modules"]}
    assert (modes["backbone.1"], modes["backbone.4"], modes["backbone.0"]) == (False, False, True)
    assert fixed["check_ok"] is True


def test_collect_report_is_reproducible_and_leaves_the_rng_alone() -> None:
    import torch

    model, x = build("small_cnn")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = collect_report(model, input_size=tuple(x.shape), check=False)
    assert torch.equal(torch.get_rng_state(), state)
    second = collect_report(model, input_size=tuple(x.shape), check=False)
    assert first.to_dict() == second.to_dict()
    assert collect_report(model, input_size=tuple(x.shape), check=False, seed=1).to_dict() != first.to_dict()


@pytest.mark.slow
def test_collect_report_on_every_zoo_model_leaves_it_as_found(zoo_model: tuple) -> None:
    from torch.nn.parameter import UninitializedParameter

    model, x = zoo_model
    lazy = any(isinstance(p, UninitializedParameter) for p in model.parameters())
    before = None if lazy else torchscope.capture_state(model)
    data = collect_report(model, input_data=x)
    if lazy:
        assert isinstance(model.lazy.weight, UninitializedParameter)
        assert "lazy modules were initialised on a copy of the model" in data.notes
    else:
        assert before is not None and before.differences(torchscope.capture_state(model)) == []
    assert data.summary is not None and data.summary.rows
    assert data.activations is not None and data.activations.calls
    assert_self_contained(render_html(data))


def test_report_and_check_freeze_run_the_same_reference_step_by_default() -> None:
    import typer

    from torchscope._checkparts.config import DEFAULT_STEP
    from torchscope.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]

    def defaults(name: str) -> dict[str, object]:
        keys = ("optimizer", "lr", "momentum", "weight_decay", "train_bn")
        return {p.name: p.default for p in commands[name].params if p.name in keys}

    assert defaults("report") == defaults("check-freeze")
    assert defaults("report") == {
        "optimizer": DEFAULT_STEP.optimizer, "lr": DEFAULT_STEP.lr, "momentum": DEFAULT_STEP.momentum,
        "weight_decay": DEFAULT_STEP.weight_decay, "train_bn": DEFAULT_STEP.train_bn,
    }  # fmt: skip


def test_report_refuses_an_optimizer_setting_torch_rejects_before_any_work(cli: CliRun, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    result = cli("report", f"{ZOO}:SmallCNN", "--input-size", "4,3,8,8", "--optimizer", "adam", "--momentum", "5",
                 "--page", page)  # fmt: skip
    assert result.exit_code == 2 and result.stdout == "" and not page.exists()
    assert result.stderr == "error: momentum=5.0 is out of range: adam uses it as beta1, which must be in [0, 1)\n"
