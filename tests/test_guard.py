"""``torchscope.guard`` in plain PyTorch loops: the freeze bugs of real fine-tunes, each caught with its
cause at the step it first appears; the step counting (AMP skips, accumulation); the hooks gone after."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from zoo import SmallCNN, TiedLM

import torchscope
from torchscope.errors import FreezeCheckError, TorchscopeError
from torchscope.render.bench import render_bench
from torchscope.render.check import render_check


def images(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3, 8, 8), torch.randint(0, 3, (n,))


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, *, set_to_none: bool = True) -> None:
    for _ in range(steps):
        x, y = images()
        opt.zero_grad(set_to_none=set_to_none)
        F.cross_entropy(model(x), y).backward()
        opt.step()


def frozen_cnn() -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN()
    torchscope.freeze(model, "backbone.*")
    model.backbone.eval()  # the fix for BatchNorm; the bug tests put it back in train mode
    return model


def no_hooks(model: nn.Module, opt: torch.optim.Optimizer) -> bool:
    model_hooks = [
        h for m in model.modules()
        for h in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks, m._state_dict_hooks)
        if h
    ]  # fmt: skip
    return not (model_hooks or opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks)


# -- the correct fine-tune passes -----------------------------------------------------------------


def test_a_correct_fine_tune_passes_every_step_and_leaves_no_hook() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    with torchscope.guard(model, optimizer=opt, expect_updates=True) as g:
        model.fc.train()
        train(model, opt, 4)
    assert g.steps == 4
    assert len(g.reports) == 5  # one per step, and one on leaving the block
    assert all(r.ok for r in g.reports)
    last = g.reports[-1]
    assert last.guard_step == 4 and last.status("frozen_param_changed") == "held"
    assert last.status("trainable_not_updated") == "held"
    assert last.snapshot_bytes < 1024  # fingerprints: 8 bytes per tensor, not a copy
    assert no_hooks(model, opt)


# -- the bugs --------------------------------------------------------------------------------------


def test_weight_decay_through_a_zeroed_grad() -> None:
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.05)  # built over everything
    train(model, opt, 1)  # one full step: every param has a grad tensor now
    torchscope.freeze(model, "backbone.*")
    model.backbone.eval()
    with pytest.raises(FreezeCheckError, match="by optimizer step 1") as info:
        with torchscope.guard(model, optimizer=opt):
            train(model, opt, 3, set_to_none=False)
    report = info.value.report
    assert report.by_kind("frozen_param_changed")
    assert all("weight_decay=0.05 moved it" in v.cause for v in report.by_kind("frozen_param_changed"))
    assert {v.step for v in report.violations} == {1}
    assert no_hooks(model, opt)


def test_freezing_after_backward_leaves_a_stale_grad() -> None:
    model = frozen_cnn()
    torchscope.unfreeze(model, "backbone.*")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = images()
    F.cross_entropy(model(x), y).backward()
    torchscope.freeze(model, "backbone.*")  # too late: the grads from that backward are still there
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt):
            opt.step()
    groups = [g for g in info.value.report.groups if g.kind == "frozen_param_changed"]
    assert sum(g.count for g in groups) == 8  # both convs and both BatchNorms, weight and bias
    assert all("was still set from before the freeze" in g.cause and "p.grad = None" in g.cause for g in groups)


def test_batchnorm_in_train_mode_drifts() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt):
            model.train()  # what every training loop does first: the frozen BatchNorm layers train too
            train(model, opt, 2)
    moved = info.value.report.by_kind("frozen_buffer_changed")
    assert {v.name for v in moved} >= {"backbone.1.running_mean", "backbone.4.running_var"}
    assert all("ran in train mode" in v.cause for v in moved)
    assert not info.value.report.by_kind("frozen_param_changed")


def test_tied_weights_undo_a_freeze() -> None:
    torch.manual_seed(0)
    model = TiedLM()
    model.embed.requires_grad_(False)  # freeze the embedding... which is also the output layer's weight
    model.out.requires_grad_(True)  # "train the head": the same tensor
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    idx = torch.randint(0, 20, (2, 5))
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, frozen=["embed.*"], optimizer=opt):
            opt.zero_grad()
            F.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()
            opt.step()
    report = info.value.report
    (tied,) = report.by_kind("tied_conflict")
    assert "same tensor as 'embed.weight'" in tied.cause
    (changed,) = report.by_kind("frozen_param_changed")
    assert changed.name == "embed.weight" and changed.step == 1


def test_requires_grad_switched_back_on_mid_run() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # all params: fine while the frozen ones get no grad
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt):
            train(model, opt, 2)
            model.requires_grad_(True)  # adapter loading or unfreeze code flips every flag back on
            train(model, opt, 1)
    report = info.value.report
    flipped = report.by_kind("requires_grad_changed")
    assert {v.name for v in flipped} >= {"backbone.0.weight"}
    assert all("switched back on" in v.cause and v.step == 3 for v in flipped)
    fixes = [g.fix for g in report.groups if g.kind == "requires_grad_changed"]
    assert fixes == ["torchscope.freeze(model, 'backbone.*')"]  # one fix, said once


def test_a_replaced_module_is_caught_by_name() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt):
            train(model, opt, 1)
            model.backbone[0] = nn.Conv2d(3, 8, 3, padding=1)  # e.g. resize_token_embeddings, a new stem
            train(model, opt, 1)
    replaced = info.value.report.by_kind("tensor_replaced")
    assert {v.name for v in replaced} == {"backbone.0.weight", "backbone.0.bias"}
    assert all(v.step == 2 and "its module 'backbone.0' was replaced" in v.cause for v in replaced)


def test_optimizer_built_before_the_freeze_keeps_momentum() -> None:
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, 2)  # warm-up with everything trainable
    torchscope.freeze(model, "backbone.*")
    model.backbone.eval()
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt):
            train(model, opt, 1, set_to_none=False)
    causes = {g.cause for g in info.value.report.groups if g.kind == "frozen_param_changed"}
    assert causes and all("momentum state from before the freeze" in c for c in causes)
    assert all("rebuild the optimizer after freezing" in c for c in causes)


def test_written_outside_the_optimizer() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt):
            train(model, opt, 1)
            with torch.no_grad():
                model.backbone[3].weight.mul_(0.999)  # an EMA, a stray .copy_()
            train(model, opt, 1)
    (v,) = info.value.report.by_kind("frozen_param_changed")
    assert v.name == "backbone.3.weight" and v.step == 2
    assert "no optimizer holds it" in v.cause


# -- when it compares, and against what ------------------------------------------------------------


def test_slow_drift_is_caught_against_the_start() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with torchscope.guard(model, optimizer=opt, mode="exact", fail_fast=False) as g:
        for _ in range(3):
            train(model, opt, 1)
            with torch.no_grad():
                model.backbone[0].bias.add_(1e-3)  # a tiny drift each step
    assert g.reports[0].ok  # the first drift comes after the check of step 1
    changes = [r.by_kind("frozen_param_changed")[0] for r in g.reports[1:]]
    assert [c.step for c in changes] == [2, 2, 2]  # first seen at step 2, and still seen after
    assert changes[-1].max_abs_change == pytest.approx(3e-3, rel=1e-3)  # the drift adds up against the start
    assert changes[0].shape == "[8]" and changes[0].name == "backbone.0.bias"


def test_every_n_steps_and_gradient_accumulation_count_updates() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with torchscope.guard(model, optimizer=opt, every=2) as g:
        for _ in range(4):  # 4 updates of 3 micro-batches each
            for _ in range(3):
                x, y = images()
                (F.cross_entropy(model(x), y) / 3).backward()
            opt.step()
            opt.zero_grad()
    assert g.steps == 4
    assert [r.guard_step for r in g.reports] == [2, 4, 4]  # steps 2 and 4, and on leaving


def test_steps_the_grad_scaler_skipped_do_not_count() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    with torchscope.guard(model, optimizer=opt) as g:
        for poison in (False, True, False):
            x, y = images()
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            if poison:
                model.fc.weight.grad.fill_(float("inf"))  # an fp16 overflow: the scaler skips this step
            scaler.step(opt)
            scaler.update()
    assert g.steps == 2
    assert [r.guard_step for r in g.reports] == [1, 2, 2]
    assert all(r.ok for r in g.reports)
    assert no_hooks(model, opt)


def test_check_without_an_optimizer() -> None:
    model = frozen_cnn()
    g = torchscope.guard(model)
    assert g.check().ok
    with torch.no_grad():
        model.backbone[0].weight.zero_()
    with pytest.raises(FreezeCheckError, match=r"backbone\.0\.weight"):
        g.check()
    g.close(check=False)
    with pytest.raises(TorchscopeError, match="this guard is closed"):
        g.check()


def test_an_error_in_the_loop_propagates_and_the_hooks_are_gone() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="the user's own bug"):
        with torchscope.guard(model, optimizer=opt):
            raise RuntimeError("the user's own bug")
    assert no_hooks(model, opt)


def test_fail_fast_false_keeps_every_report() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with torchscope.guard(model, optimizer=opt, fail_fast=False) as g:
        model.train()
        train(model, opt, 3)
    assert len(g.reports) == 4 and not any(r.ok for r in g.reports)


def test_exact_mode_keeps_one_copy() -> None:
    model = frozen_cnn()
    frozen_bytes = sum(p.nbytes for p in model.backbone.parameters()) + sum(
        b.nbytes for b in model.backbone.buffers()
    )
    g = torchscope.guard(model, mode="exact")
    assert g.snap.nbytes >= frozen_bytes  # one copy
    assert g.snap.nbytes < 2 * frozen_bytes  # and only one
    g.close()


# -- expect_updates ----------------------------------------------------------------------------------


class LoraLinear(nn.Module):
    """A frozen base with a LoRA pair: lora_B starts at zero, so lora_A gets no grad on step one."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(6, 6)
        self.lora_A = nn.Linear(6, 2, bias=False)
        self.lora_B = nn.Linear(2, 6, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        self.unused = nn.Linear(6, 6)  # trainable, but no forward uses it
        self.base.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x))


def test_expect_updates_names_what_never_trained_and_spares_lora_a() -> None:
    torch.manual_seed(0)
    model = LoraLinear()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, expect_updates=True):
            for _ in range(4):
                opt.zero_grad()
                model(torch.randn(4, 6)).square().mean().backward()
                opt.step()
    report = info.value.report
    assert report.guard_step == 3
    assert [v.name for v in report.by_kind("trainable_not_updated")] == ["unused.weight", "unused.bias"]
    assert "got no grad" in report.by_kind("trainable_not_updated")[0].cause


def test_expect_updates_after_one_step_is_not_decided() -> None:
    torch.manual_seed(0)
    model = LoraLinear()
    del model.unused
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with torchscope.guard(model, optimizer=opt, expect_updates=True) as g:
        opt.zero_grad()
        model(torch.randn(4, 6)).square().mean().backward()
        opt.step()
    last = g.reports[-1]
    assert last.ok and last.status("trainable_not_updated") == "not_checked"
    assert "one step is too few" in dict(last.not_checked)["trainable_not_updated"]


# -- what it reads, and what it refuses ---------------------------------------------------------------


def test_meta_tensors_are_named_as_not_read() -> None:
    model = frozen_cnn()
    model.backbone[1].register_buffer("offloaded", torch.empty(4, device="meta"))
    with torchscope.guard(model) as g:
        pass
    (caveat,) = g.reports[-1].caveats
    assert "backbone.1.offloaded" in caveat and "not by value" in caveat


def test_nothing_frozen_is_an_error() -> None:
    with pytest.raises(TorchscopeError, match="nothing in the model is frozen when the guard starts"):
        torchscope.guard(nn.Linear(2, 2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"every": 0}, "every=0 must be an integer >= 1"), ({"mode": "bits"}, "mode='bits' is not"),
     ({"optimizer": object()}, "optimizer must be a torch.optim.Optimizer")],
)  # fmt: skip
def test_bad_arguments_name_the_value(kwargs: dict, match: str) -> None:
    with pytest.raises(TorchscopeError, match=match):
        torchscope.guard(frozen_cnn(), **kwargs)


# -- the report renders as check_step's --------------------------------------------------------------


def test_the_report_renders_as_text_json_and_panel() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with torchscope.guard(model, optimizer=opt, fail_fast=False) as g:
        model.train()
        train(model, opt, 1)
    report = g.reports[0]
    text = str(report)
    assert text.startswith("freeze guard at step 1 (fingerprint mode): FAILED")
    assert "backbone.1.running_mean" in text and "cause (all" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["guard_step"] == 1 and data["violations"][0]["step"] == 1
    console = Console(width=100, color_system=None, record=True)
    console.print(render_check(report, title="guard"))
    panel = console.export_text()
    assert "frozen buffers unchanged" in panel and "ran in train mode" in panel


def test_the_guard_page_is_up_to_date() -> None:
    """docs/guard.md is generated from examples that run: every bug there is caught as shown."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("gen_guard_docs", root / "scripts" / "gen_guard_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (root / "docs" / "guard.md").read_text(encoding="utf-8")
    assert current == module.render(), "docs/guard.md is out of date; run: python scripts/gen_guard_docs.py"


def test_check_freeze_over_several_steps_shows_the_guards_first_step(cli: Any) -> None:
    zoo = str(Path(__file__).parent / "zoo.py")
    result = cli("check-freeze", f"{zoo}:SmallCNN", "--freeze", "backbone", "--input-size", "4,3,8,8",
                 "--steps", "3", "--json")  # fmt: skip
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["guard_step"] == 3
    moved = [v for v in data["violations"] if v["kind"] == "frozen_buffer_changed"]
    assert moved and {v["step"] for v in moved} == {1}  # train-mode BatchNorm moves on the first step
    panel = cli("check-freeze", f"{zoo}:SmallCNN", "--freeze", "backbone", "--input-size", "4,3,8,8",
                "--steps", "3", "--no-color")  # fmt: skip
    words = " ".join(panel.stdout.replace("│", " ").split())  # the panel wraps at 80 columns
    assert "from step 1" in words and "guard watched 3 step(s) against the start" in words


def test_bench_shows_the_guards_view_of_the_frozen_run() -> None:
    result = torchscope.bench("resnet18", mode="frozen", device="cpu", batch_size=2, image_size=32,
                              steps=1, windows=1, warmup=1, measure_peak=False)  # fmt: skip
    check = result.mode("frozen").check
    assert check is not None and check.guard is not None
    assert check.guard_ok is True and check.guard["frozen_params"] == 60  # the whole backbone, every timed step
    back = type(check).from_dict(json.loads(json.dumps(check.to_dict())))
    assert back.guard == check.guard


def test_bench_fails_when_the_guard_saw_a_change() -> None:
    result = torchscope.bench("resnet18", mode="frozen", device="cpu", batch_size=2, image_size=32,
                              steps=1, windows=1, warmup=1, measure_peak=False)  # fmt: skip
    m = result.mode("frozen")
    assert m.check is not None and m.check.guard is not None
    moved = {**m.check.guard, "ok": False, "violations": [
        {"kind": "frozen_buffer_changed", "name": "bn1.running_mean", "cause": "its BatchNorm2d module ran in train mode"}
    ]}  # fmt: skip
    broken = dataclasses.replace(result, modes=(dataclasses.replace(m, check=dataclasses.replace(m.check, guard=moved)),))
    assert not broken.ok
    assert broken.failures() == ("frozen: the freeze guard saw 1 frozen tensor(s) change during the run",)
    console = Console(width=100, color_system=None, record=True)
    console.print(render_bench(broken))
    text = console.export_text()
    assert "guard: 1 frozen tensor(s) changed during the run" in " ".join(text.replace("│", " ").split())
    assert "✗ frozen_buffer_changed bn1.running_mean: its BatchNorm2d module ran in train mode" in text
