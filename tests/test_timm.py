"""timm models end to end, through the CLI: tree, summary, check-freeze, bench, report.

Tiny timm test models (``test_vit``, ``test_resnet``), randomly initialised: nothing is downloaded.
Skipped when timm is not installed (``pip install 'torchscope[timm]'``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

timm = pytest.importorskip("timm", reason="timm not installed: pip install 'torchscope[timm]'")

import torchscope  # noqa: E402
from torchscope.cli import app  # noqa: E402

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def params_of(name: str) -> int:
    model = timm.create_model(name, pretrained=False)
    return sum(p.numel() for p in model.parameters())


def test_tree_counts_every_param_of_a_timm_vit() -> None:
    code, out = cli("tree", "timm:test_vit", "--json")
    assert code == 0, out
    d = json.loads(out)
    assert d["model_type"] == "VisionTransformer"
    assert d["total_params"] == params_of("test_vit")
    assert "head" in [m["name"] for m in d["modules"]]


def test_summary_counts_attention_of_a_timm_vit() -> None:
    code, out = cli("summary", "timm:test_vit", "--input-size", "1,3,160,160", "--json")
    assert code == 0, out
    d = json.loads(out)
    assert d["outputs"][0]["shape"] == [1, 1000]
    assert d["total_params"] == params_of("test_vit")
    assert not any("scaled_dot_product" in op for op in d["uncounted_ops"])
    # Every Linear's MACs are at least tokens * in * out; attention adds on top of that.
    model = timm.create_model("test_vit", pretrained=False)
    tokens = (160 // model.patch_embed.patch_size[0]) ** 2 + model.num_prefix_tokens
    linear_macs = sum(
        m.in_features * m.out_features * (1 if name == "head" else tokens)
        for name, m in model.named_modules()
        if type(m).__name__ == "Linear"
    )
    assert d["total_mult_adds"] > linear_macs


def test_check_freeze_on_a_timm_resnet_finds_the_batchnorm_drift_and_its_fix() -> None:
    args = ("check-freeze", "timm:test_resnet", "--freeze-backbone", "--input-size", "2,3,32,32")
    code, out = cli(*args, "--json")
    assert code == 1, out
    d = json.loads(out)
    assert {v["kind"] for v in d["violations"]} == {"frozen_buffer_changed"}
    code, out = cli(*args, "--eval-bn", "--json")
    assert code == 0, out
    assert json.loads(out)["ok"] is True


def test_freeze_backbone_finds_the_timm_head() -> None:
    model = torchscope.load_model("timm:test_vit")
    torchscope.freeze_backbone(model)
    t = torchscope.tree(model)
    assert t.trainable_params == sum(p.numel() for p in model.head.parameters())


def test_bench_runs_a_timm_model() -> None:
    code, out = cli(
        "bench", "--model", "timm:test_resnet", "--mode", "frozen", "--device", "cpu", "-b", "2",
        "--image-size", "32", "--steps", "1", "--windows", "1", "--warmup", "1", "--no-baseline",
        "--no-progress", "--json", "-",
    )  # fmt: skip
    assert code == 0, out
    d = json.loads(out)
    mode = d["modes"][0]
    assert mode["mode"] == "frozen"
    assert mode["check"]["ok"] is True


def test_report_on_a_timm_vit(tmp_path: Path) -> None:
    page = tmp_path / "vit.html"
    code, out = cli(
        "report", "timm:test_vit", "--input-size", "2,3,160,160", "--freeze-backbone", "--page", str(page), "--no-color"
    )
    assert code == 0, out
    # a ViT has no BatchNorm: the frozen-buffer check had nothing to look at, and says so
    assert "✓ every checked invariant holds (1 not checked)" in out
    assert "frozen_buffer_changed (no frozen buffer)" in out
    text = page.read_text(encoding="utf-8")
    assert "VisionTransformer" in text and text.count("<svg ") == 5  # the four charts and the memory bar
