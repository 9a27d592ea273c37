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
        (["--input-size", "2,x"], "--input-size '2,x' is not a list of integers"),
        (["--input-size", ""], "--input-size '' is empty"),
        (["--optimizer", "rmsprop"], "optimizer='rmsprop' is not one of sgd, adam, adamw"),
        (["--steps", "0"], "steps=0 is out of range: it must be an integer >= 1"),
        (["--optimizer", "adam", "--momentum", "5"], "momentum=5.0 is out of range: adam uses it as beta1, which must be in [0, 1)"),
        (["--momentum", "1"], "momentum=1.0 is out of range: sgd uses it as momentum, which must be in [0, 1)"),
        (["--lr", "nan"], "lr=nan is out of range: it must be a finite number >= 0"),
        (["--weight-decay", "-1"], "weight_decay=-1.0 is out of range: it must be a finite number >= 0"),
        (["--freeze", "bakbone"], "pattern 'bakbone' matches no parameter"),
        (["--input-size", "2,5"], "forward pass on an input of size [2, 5] failed"),
        (["--device", "nonsense"], "nonsense"),
    ],
)
def test_check_freeze_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    args = args if "--input-size" in args else [*args, "--input-size", "2,3,8,8"]
    args = args if "--freeze" in args else [*args, "--freeze", "backbone"]
    result = _run("check-freeze", f"{ZOO}:SmallCNN", *args)
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

    from torchscope._check import StepCheck, Violation
    from torchscope.render.check import render_check

    report = StepCheck(
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
        "╭─ ✗ 3 violation(s) · check-freeze net ────────────────────────────────────────────────────────────╮",
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


# ---------------------------------------------------------------------------------------------
# No silent success, one answer from every command, the step named, the verdict never cut.

MODELS = '''
import torch
from torch import nn


class Returns(nn.Module):
    """A forward that returns what RESULT says, after using its layer."""

    def __init__(self, result: str = "none") -> None:
        super().__init__()
        self.stem = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 3)
        self.result = result

    def forward(self, x):
        y = self.fc(self.stem(x))
        return {"none": None, "str": "done", "float": float(y.sum()), "labels": y.argmax(1)}[self.result]


class Branchy(nn.Module):
    """A data-dependent branch: positive inputs take `pos`, the others `neg`."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 4)
        self.pos = nn.Linear(4, 3)
        self.neg = nn.Linear(4, 3)

    def forward(self, x):
        h = self.stem(x)
        return self.pos(h) if x.sum() > -1e9 else self.neg(h)
'''


def _words(output: str) -> str:
    """The words of a panel, its borders and line breaks removed."""
    return " ".join(output.replace("│", " ").split())


@pytest.fixture
def models(tmp_path: Path) -> str:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return str(path)


def test_check_freeze_with_nothing_frozen_is_not_a_success(models: str) -> None:
    empty = _run("check-freeze", f"{models}:Branchy", "--input-size", "2,4")
    assert empty.exit_code == 2
    assert empty.stderr.strip().splitlines() == [
        f"error: nothing in {models}:Branchy is frozen, so there is nothing to check; freeze something "
        "(--freeze 'backbone.*', --freeze-backbone) or pass --allow-empty"
    ]
    assert empty.stdout == ""
    undone = _run("check-freeze", f"{ZOO}:SmallCNN", "--freeze", "backbone", "--unfreeze", "backbone",
                  "--input-size", "2,3,8,8")  # fmt: skip
    assert undone.exit_code == 2 and "is frozen, so there is nothing to check" in undone.stderr
    allowed = _run("check-freeze", f"{ZOO}:SmallCNN", "--input-size", "2,3,8,8", "--allow-empty", "--no-color")
    assert allowed.exit_code == 0, allowed.output
    assert "! nothing frozen, nothing checked" in allowed.output and "all invariants hold" not in allowed.output
    assert "- frozen params unchanged: nothing frozen, not checked" in allowed.output
    data = json.loads(_run("check-freeze", f"{ZOO}:SmallCNN", "--input-size", "2,3,8,8", "--allow-empty", "--json").output)
    assert data["nothing_frozen"] is True
    assert data["caveats"] == [
        "nothing was frozen, so no freeze invariant was checked (only that trainable params updated)"
    ]


@pytest.mark.parametrize(
    ("result", "said"),
    [
        ("none", "returned None"),
        ("str", "returned a str ('done')"),
        ("float", "returned a float ("),
        ("labels", "returned only int64 tensors"),
    ],
)
def test_a_forward_without_a_loss_is_bad_input_in_grads_and_check_freeze(models: str, result: str, said: str) -> None:
    spec = f"{models}:Returns"
    common = ["--arg", f"result={result!r}", "--input-size", "2,4"]
    for command in (["grads", spec, *common], ["check-freeze", spec, *common, "--freeze", "stem"]):
        out = _run(*command)
        assert out.exit_code == 2, (command, out.output)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and f"the model's forward {said}" in lines[0], (command, lines)


def test_grads_and_check_freeze_say_an_unused_branch_holds_for_this_input_only(models: str) -> None:
    spec = f"{models}:Branchy"
    grads = json.loads(_run("grads", spec, "--input-size", "2,4", "--json").output)
    assert set(grads["unused"]) == {"neg.weight", "neg.bias"}
    assert grads["caveats"] == [
        "2 trainable params got no grad from this input; a branch that depends on the input may use them on "
        "another, so this verdict holds for this input only"
    ]
    check = _run("check-freeze", spec, "--freeze", "stem", "--input-size", "2,4", "--json")
    assert check.exit_code == 1
    data = json.loads(check.output)
    assert [v["name"] for v in data["violations"]] == ["neg.weight", "neg.bias"]
    assert data["caveats"] == grads["caveats"]
    panel = _run("check-freeze", spec, "--freeze", "stem", "--input-size", "2,4", "--no-color")
    assert "note: 2 trainable params got no grad from this input" in _words(panel.output)
    assert "holds for this input only" in _words(panel.output)
    assert "holds for this input only" in _words(_run("grads", spec, "--input-size", "2,4", "--no-color").output)


def test_check_freeze_names_the_step_it_checked_with_the_defaults_report_uses() -> None:
    from torchscope._check import DEFAULT_STEP, check_freeze

    args = ["check-freeze", f"{ZOO}:SmallCNN", "--freeze", "backbone", "--eval-bn", "--input-size", "4,3,8,8"]
    data = json.loads(_run(*args, "--json").output)
    assert data["reference"] == {
        "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0001, "steps": 1, "bn_mode": "eval",
        "seed": 0,
    }
    assert data["reference"] == {**DEFAULT_STEP.to_dict(), "bn_mode": "eval"}
    # the library's defaults are the same step
    report = check_freeze(SmallCNN(), input_size=(4, 3, 8, 8))
    assert report.reference == DEFAULT_STEP
    panel = _words(_run(*args, "--optimizer", "adamw", "--momentum", "0.8", "--no-color").output)
    assert (
        "step: 1 adamw step (lr=0.01, momentum=0.8, weight_decay=0.0001), frozen norm layers in eval mode" in panel
    )


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_verdict_is_never_cut_by_a_long_spec(width: int) -> None:
    from rendering import text

    from torchscope._check import check_freeze
    from torchscope.render.check import render_check

    model = SmallCNN()
    model.backbone.requires_grad_(False)
    spec = "/home/someone/a/very/long/checkout/path/of/the/project/tests/zoo.py:SmallCNN"
    ok = render_check(check_freeze(model, input_size=(4, 3, 8, 8), train_bn=False), title=f"check-freeze {spec}")
    bad = render_check(check_freeze(model, input_size=(4, 3, 8, 8)), title=f"check-freeze {spec}")
    ok_lines, bad_lines = text(ok, width).splitlines(), text(bad, width).splitlines()
    assert ok_lines[0].startswith("╭─ ✓ all invariants hold")
    assert bad_lines[0].startswith("╭─ ✗ 6 violation(s)")
    assert all(len(line) <= width for line in ok_lines + bad_lines)
    # the spec stands beside the verdict where it fits, else on the panel's first line, never cut
    assert (spec in ok_lines[0]) == (width == 200)
    if width < 200:
        assert ok_lines[0].startswith("╭─ ✓ all invariants hold ─") and "…" not in ok_lines[0] + bad_lines[0]
        # a spec longer than the panel folds onto the next lines: every character is there, in order
        inside = "".join(line.strip("│").strip() for line in ok_lines[1:4])
        assert inside.startswith(f"check-freeze{spec}")
