"""`torchscope check-freeze` and `torchscope diff`: exit codes, panels, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner
from zoo import SmallCNN

from torchscope.cli import app

ZOO = str(Path(__file__).parent / "zoo.py")
runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_check_freeze_reproduces_the_batchnorm_bug_and_its_fix() -> None:
    bug = _run("check-freeze", f"{ZOO}:SmallCNN", "--freeze", "backbone", "--input-size", "4,3,8,8", "--no-color")
    assert bug.exit_code == 1, bug.output
    assert "check-freeze" in bug.output and "✗ 6 violation(s)" in bug.output
    assert "✓ frozen params unchanged" in bug.output
    assert "✗ frozen buffers unchanged (norm running stats)" in bug.output
    assert "backbone.1, backbone.4 (running_mean, running_var, num_batches_tracked)" in bug.output
    assert "FrozenBatchNorm2d" in bug.output
    assert "checked 8 frozen + 2 trainable of 10 params, 6 frozen of 6 buffers" in bug.output
    fix = _run(
        "check-freeze", f"{ZOO}:SmallCNN", "--freeze", "backbone", "--input-size", "4,3,8,8", "--eval-bn",
        "--optimizer", "adamw", "--weight-decay", "0.01", "--momentum", "0.9", "--steps", "2",
    )
    assert fix.exit_code == 0, fix.output
    assert "all invariants hold" in fix.output and "2 optimizer step(s)" in fix.output


def test_check_freeze_json_is_the_step_report() -> None:
    result = _run(
        "check-freeze", f"{ZOO}:AuxHeadNet", "--freeze", "stem", "--input-size", "4,8", "--json", "--fingerprint"
    )
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["mode"] == "fingerprint" and data["ok"] is False
    assert [(v["kind"], v["name"]) for v in data["violations"]] == [
        ("trainable_not_updated", "unused.weight"),
        ("trainable_not_updated", "unused.bias"),
    ]
    assert "got no grad" in data["violations"][0]["cause"]


def test_check_freeze_resnet18_frozen_backbone() -> None:
    result = _run(
        "check-freeze", "resnet18", "--freeze-backbone", "--input-size", "1,3,64,64", "--eval-bn",
        "--momentum", "0.9", "--weight-decay", "1e-4", "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["frozen_params"], data["trainable_params"], data["frozen_buffers"]) == (60, 2, 60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-size", "2,x"], "--input-size '2,x' must be comma-separated positive integers"),
        (["--optimizer", "rmsprop"], "optimizer 'rmsprop' is not one of sgd, adam, adamw"),
        (["--steps", "0"], "steps=0 must be an integer >= 1"),
        (["--freeze", "bakbone"], "pattern 'bakbone' matches no parameter"),
        (["--input-size", "2,5"], "forward pass on an input of size (2, 5) failed"),
        (["--device", "nonsense"], "nonsense"),
    ],
)
def test_check_freeze_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = _run("check-freeze", f"{ZOO}:SmallCNN", *(args if "--input-size" in args else [*args, "--input-size", "2,3,8,8"]))
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _checkpoints(tmp_path: Path, touch: str) -> tuple[str, str]:
    torch.manual_seed(0)
    a = SmallCNN().state_dict()
    b = {k: v.clone() for k, v in a.items()}
    b[touch] += 0.5
    pa, pb = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(a, pa)
    torch.save(b, pb)
    return str(pa), str(pb)


def test_diff_exit_codes_follow_expect_frozen(tmp_path: Path) -> None:
    pa, pb = _checkpoints(tmp_path, "fc.weight")
    ok = _run("diff", pa, pb, "--expect-frozen", "backbone", "--no-color")
    assert ok.exit_code == 0, ok.output
    assert "✓ all 14 expected-frozen tensors unchanged" in ok.output and "weight  changed" in ok.output
    pa, pb = _checkpoints(tmp_path, "backbone.3.weight")
    bad = _run("diff", pa, pb, "--expect-frozen", "backbone.*")
    assert bad.exit_code == 1
    assert "✗ 1 expected-frozen tensor(s) changed: backbone.3.weight" in bad.output
    data = json.loads(_run("diff", pa, pb, "--json").output)
    assert data["counts"]["changed"] == 1 and data["ok"] is True


def test_diff_bad_input_exits_2(tmp_path: Path) -> None:
    pa, _ = _checkpoints(tmp_path, "fc.bias")
    missing = _run("diff", pa, str(tmp_path / "nope.pt"))
    assert missing.exit_code == 2 and "checkpoint not found" in missing.stderr
    torch.save(SmallCNN(), tmp_path / "whole.pt")
    pickled = _run("diff", pa, str(tmp_path / "whole.pt"))
    assert pickled.exit_code == 2 and "--unsafe-load" in pickled.stderr
    assert _run("diff", pa, str(tmp_path / "whole.pt"), "--unsafe-load").exit_code == 0


def test_render_check_panel_exact_text() -> None:
    from rich.console import Console

    from torchscope._check import StepReport, Violation
    from torchscope.render.check import render_check

    report = StepReport(
        ok=False,
        violations=(
            Violation("frozen_param_changed", "backbone.0.weight", 0.0125, "its grad was zero rather than None."),
            Violation("frozen_param_changed", "backbone.0.bias", 0.5, "its grad was zero rather than None."),
            Violation("trainable_not_updated", "head.weight", 0.0, "it got no grad."),
        ),
        mode="exact",
        checks=("frozen_param_changed", "frozen_buffer_changed", "trainable_not_updated", "nonfinite"),
        params=4,
        frozen_params=2,
        trainable_params=2,
        buffers=3,
        frozen_buffers=3,
        bytes_checked=2048,
        snapshot_bytes=1536,
        optimizer_steps=1,
    )
    console = Console(width=100, color_system=None, record=True)
    console.print(render_check(report, title="check-freeze net"))
    assert console.export_text().splitlines() == [
        "╭─ check-freeze net: ✗ 3 violation(s) ─────────────────────────────────────────────────────────────╮",
        "│ ✗ frozen params unchanged  2× frozen_param_changed                                               │",
        "│   backbone.0.weight, backbone.0.bias (max |change| 0.5)                                          │",
        "│     its grad was zero rather than None.                                                          │",
        "│ ✓ frozen buffers unchanged (norm running stats)                                                  │",
        "│ ✗ every trainable param updated  1× trainable_not_updated                                        │",
        "│   head.weight                                                                                    │",
        "│     it got no grad.                                                                              │",
        "│ ✓ params, grads and buffers finite                                                               │",
        "│                                                                                                  │",
        "│ checked 2 frozen + 2 trainable of 4 params, 3 frozen of 3 buffers (2.0 KiB); exact mode,         │",
        "│ snapshot 1.5 KiB, 1 optimizer step(s)                                                            │",
        "╰──────────────────────────────────────────────────────────────────────────────────────────────────╯",
    ]
