"""check_step: every violation kind and every cause it tells apart, each built the way users write it."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from zoo import AuxHeadNet, SmallCNN, TiedLM

from torchscope import check_step, freeze
from torchscope._fingerprint import track_allocations
from torchscope._state import capture_state
from torchscope.errors import PatternError, TorchscopeError


def _cnn(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    return SmallCNN(), torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))


def _freeze_backbone(model: nn.Module) -> None:
    for p in model.backbone.parameters():
        p.requires_grad_(False)


def _eval_frozen_bn(model: nn.Module) -> None:
    for m in model.backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def _make_step(model, opt, x, y, *, set_to_none: bool = True, zero_first: bool = True):
    def step() -> None:
        if zero_first:
            opt.zero_grad(set_to_none=set_to_none)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if not zero_first:
            opt.zero_grad(set_to_none=set_to_none)

    return step


def _kinds(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in report.to_dict()["violations"]:
        out.setdefault(v["kind"], []).append(v["name"])
    return out


def test_correct_fine_tune_is_ok_and_counts_what_it_checked() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    model.train()
    _eval_frozen_bn(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9, weight_decay=1e-4)
    report = check_step(model, _make_step(model, opt, x, y), optimizer=opt)
    d = report.to_dict()
    assert d["ok"] is True and d["violations"] == []
    assert (d["params"], d["frozen_params"], d["trainable_params"]) == (10, 8, 2)
    assert (d["buffers"], d["frozen_buffers"]) == (6, 6)
    frozen_bytes = sum(p.nbytes for p in model.backbone.parameters()) + sum(b.nbytes for b in model.buffers())
    assert d["bytes_checked"] == frozen_bytes + model.fc.weight.nbytes + model.fc.bias.nbytes
    assert d["optimizer_steps"] == 1
    assert "optimizer_missing_param" in d["checks"] and "tied_conflict" not in d["checks"]
    assert str(report).startswith("check_step (exact mode): OK")


def _train_then_freeze(optimizer_factory):
    """Users fine-tune everything for a while, then freeze the backbone and keep the same optimizer."""
    model, x, y = _cnn()
    model.eval()  # keep BatchNorm out of this: only params are under test here
    opt = optimizer_factory(model.parameters())
    _make_step(model, opt, x, y)()
    _freeze_backbone(model)
    return model, opt, x, y


def test_zero_grad_not_none_plus_weight_decay_moves_frozen_params() -> None:
    model, opt, x, y = _train_then_freeze(lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.01))
    report = check_step(model, _make_step(model, opt, x, y, set_to_none=False), optimizer=opt)
    changed = report.by_kind("frozen_param_changed")
    assert {v.name for v in changed} == {n for n, _ in model.backbone.named_parameters(prefix="backbone")}
    v = next(v for v in changed if v.name == "backbone.0.weight")
    assert "grad was zero rather than None" in v.cause and "weight_decay=0.01" in v.cause
    assert "zero_grad(set_to_none=True)" in v.cause
    assert v.max_abs_change == pytest.approx(0.1 * 0.01 * model.backbone[0].weight.abs().max().item(), rel=0.05)
    audit = report.by_kind("optimizer_frozen_param")
    assert "backbone.0.weight" in {a.name for a in audit} and "weight_decay=0.01" in audit[0].cause


def test_momentum_from_before_the_freeze_moves_frozen_params() -> None:
    model, opt, x, y = _train_then_freeze(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    report = check_step(model, _make_step(model, opt, x, y, set_to_none=False), optimizer=opt)
    v = next(v for v in report.violations if v.kind == "frozen_param_changed" and v.name == "backbone.3.weight")
    assert "momentum state from before the freeze" in v.cause and "weight_decay" not in v.cause
    assert "rebuild the optimizer after freezing" in v.cause
    audit = {a.name: a.cause for a in report.by_kind("optimizer_frozen_param")}
    assert "has momentum state from before the freeze" in audit["backbone.3.weight"]


def test_set_to_none_keeps_the_same_optimizer_harmless_for_params() -> None:
    model, opt, x, y = _train_then_freeze(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    report = check_step(model, _make_step(model, opt, x, y, set_to_none=True), optimizer=opt)
    assert _kinds(report).keys() == {"optimizer_frozen_param"}  # risky, reported, but nothing moved


def test_stale_grad_from_before_the_freeze_is_applied() -> None:
    model, x, y = _cnn()
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(x), y).backward()  # e.g. a grad-norm probe before fine-tuning starts
    _freeze_backbone(model)
    report = check_step(model, _make_step(model, opt, x, y, zero_first=False), optimizer=opt)
    v = next(v for v in report.violations if v.name == "backbone.0.weight")
    assert v.kind == "frozen_param_changed"
    assert "still set from before the freeze" in v.cause and "p.grad = None" in v.cause
    # without the optimizer the grad seen before the step still names the cause
    model2, x2, y2 = _cnn()
    model2.eval()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1)
    F.cross_entropy(model2(x2), y2).backward()
    _freeze_backbone(model2)
    r2 = check_step(model2, _make_step(model2, opt2, x2, y2, zero_first=False))
    assert "from before the freeze was still set" in r2.by_kind("frozen_param_changed")[0].cause


def test_write_by_something_that_is_not_the_optimizer() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    model.eval()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    inner = _make_step(model, opt, x, y)

    def step() -> None:
        inner()
        with torch.no_grad():  # a hand-written "EMA" that forgot which params are frozen
            model.backbone[0].weight.mul_(0.999)

    report = check_step(model, step, optimizer=opt)
    (v,) = report.by_kind("frozen_param_changed")
    assert v.name == "backbone.0.weight" and "no optimizer holds it" in v.cause
    assert v.max_abs_change is not None and v.max_abs_change > 0
    # held by an optimizer, but with no grad the optimizer skipped it: the cause says so
    opt_all = torch.optim.SGD(model.parameters(), lr=0.1)
    inner_all = _make_step(model, opt_all, x, y)

    def step_all() -> None:
        inner_all()
        with torch.no_grad():
            model.backbone[0].weight.mul_(0.999)

    (v2,) = check_step(model, step_all, optimizer=opt_all).by_kind("frozen_param_changed")
    assert "had no grad at optimizer.step(), so the optimizer skipped it" in v2.cause


def test_batchnorm_in_train_mode_moves_frozen_buffers_and_eval_fixes_it() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    report = check_step(model, _make_step(model, opt, x, y), optimizer=opt)
    names = [v.name for v in report.by_kind("frozen_buffer_changed")]
    assert names == [
        f"backbone.{i}.{b}" for i in (1, 4) for b in ("running_mean", "running_var", "num_batches_tracked")
    ]
    cause = report.by_kind("frozen_buffer_changed")[0].cause
    assert "its BatchNorm2d module ran in train mode" in cause and ".eval()" in cause and "FrozenBatchNorm2d" in cause
    assert report.by_kind("frozen_buffer_changed")[2].max_abs_change == 1.0  # num_batches_tracked
    _eval_frozen_bn(model)
    assert check_step(model, _make_step(model, opt, x, y), optimizer=opt).ok


def test_trainable_not_in_any_group_after_replace_head() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    model.eval()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.fc = nn.Linear(8, 3)  # replaced after the optimizer was built
    report = check_step(model, _make_step(model, opt, x, y), optimizer=opt)
    kinds = _kinds(report)
    assert kinds["trainable_not_updated"] == ["fc.weight", "fc.bias"]
    assert kinds["optimizer_missing_param"] == ["fc.weight", "fc.bias"]
    assert kinds["optimizer_stale_param"] == ["param_groups[0][0] (shape [3, 8])", "param_groups[0][1] (shape [3])"]
    assert "in no optimizer param group" in report.by_kind("trainable_not_updated")[0].cause


def test_trainable_without_grad_unused_branch() -> None:
    torch.manual_seed(0)
    model = AuxHeadNet().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))

    def step() -> None:
        opt.zero_grad()
        out = model(x)
        F.cross_entropy(out.logits, y).backward()  # the aux logits are ignored, `unused` is never called
        opt.step()

    report = check_step(model, step, optimizer=opt)
    not_updated = report.by_kind("trainable_not_updated")
    assert [v.name for v in not_updated] == ["aux.weight", "aux.bias", "unused.weight", "unused.bias"]
    assert all("got no grad" in v.cause and "unused branch" in v.cause for v in not_updated)
    # no optimizer given: the grad after the step tells the same story
    r2 = check_step(model, step)
    assert [v.name for v in r2.by_kind("trainable_not_updated")] == [v.name for v in not_updated]


def test_trainable_with_all_zero_grad() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[2].weight.zero_()  # zero-initialised last layer: nothing flows back to model[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    report = check_step(model, _make_step(model, opt, x, y), optimizer=opt)
    assert [v.name for v in report.by_kind("trainable_not_updated")] == ["0.weight", "0.bias"]
    assert "grad was all zero" in report.violations[0].cause


def test_trainable_with_lr_zero() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    model.eval()
    opt = torch.optim.SGD([{"params": [model.fc.weight], "lr": 0.0}, {"params": [model.fc.bias]}], lr=0.1)
    report = check_step(model, _make_step(model, opt, x, y), optimizer=opt)
    (v,) = report.violations
    assert (v.kind, v.name) == ("trainable_not_updated", "fc.weight")
    assert "param group 0 has lr=0" in v.cause


def test_nonfinite_param_and_grad() -> None:
    model, x, y = _cnn()
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = x.clone()
    x[0, 0, 0, 0] = float("nan")  # one bad pixel in the batch
    report = check_step(model, _make_step(model, opt, x, y), optimizer=opt)
    names = set(_kinds(report)["nonfinite"])
    assert {"fc.weight", "fc.weight.grad", "backbone.0.weight", "backbone.0.weight.grad"} <= names
    causes = {v.name: v.cause for v in report.by_kind("nonfinite")}
    assert "update blew up" in causes["fc.weight"] and "detect_anomaly" in causes["fc.weight.grad"]


def test_tied_weight_trainable_under_one_name_expected_frozen_under_the_other() -> None:
    torch.manual_seed(0)
    model = TiedLM()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    idx = torch.randint(0, 20, (2, 5))

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(idx).flatten(0, 1), idx.flatten()).backward()
        opt.step()

    report = check_step(model, step, optimizer=opt, frozen=["embed"])
    (tied,) = report.by_kind("tied_conflict")
    assert tied.name == "out.weight"
    assert "same tensor as 'embed.weight'" in tied.cause and "trainable as 'out.weight'" in tied.cause
    (changed,) = report.by_kind("frozen_param_changed")
    assert changed.name == "embed.weight" and "requires_grad=True (it is also 'out.weight')" in changed.cause
    # freezing by one name froze the other: reported the other way round
    torchscope_freeze = model.embed.weight.requires_grad_(False)
    assert torchscope_freeze is model.out.weight
    report2 = check_step(model, step, optimizer=opt, frozen="embed")
    (tied2,) = report2.by_kind("tied_conflict")
    assert "freezing 'embed.weight' also froze 'out.weight'" in tied2.cause
    assert "tied_conflict" in report2.checks


def test_exact_mode_atol_and_cpu_snapshot() -> None:
    model, _, _ = _cnn()
    _freeze_backbone(model)
    model.eval()

    def nudge() -> None:
        with torch.no_grad():
            model.backbone[0].weight[0, 0, 0, 0] += 1e-4

    r0 = check_step(model, nudge)
    (v,) = r0.by_kind("frozen_param_changed")
    assert v.max_abs_change == pytest.approx(1e-4, rel=1e-2)
    assert check_step(model, nudge, atol=1e-3).by_kind("frozen_param_changed") == ()
    r_cpu = check_step(model, nudge, snapshot_device="cpu")
    assert r_cpu.by_kind("frozen_param_changed")[0].max_abs_change == pytest.approx(1e-4, rel=1e-2)
    frozen_bytes = sum(p.nbytes for p in model.backbone.parameters()) + sum(b.nbytes for b in model.buffers())
    assert frozen_bytes <= r_cpu.snapshot_bytes < frozen_bytes + 1024


def test_exact_mode_is_bit_for_bit() -> None:
    model = nn.Linear(3, 3)
    model.requires_grad_(False)
    with torch.no_grad():
        model.weight[0, 0] = 0.0

    def flip_sign_of_zero() -> None:  # -0.0 == 0.0 numerically, but the bits differ
        with torch.no_grad():
            model.weight[0, 0] = -0.0

    (v,) = check_step(model, flip_sign_of_zero).violations
    assert (v.kind, v.name, v.max_abs_change) == ("frozen_param_changed", "weight", 0.0)


def test_fingerprint_mode_finds_a_single_changed_element() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 2))
    model[0].requires_grad_(False)

    def one_element() -> None:
        with torch.no_grad():
            model[0].weight[37, 11] = torch.nextafter(model[0].weight[37, 11], torch.tensor(9.0))
            model[1].weight.add_(1.0)

    report = check_step(model, one_element, mode="fingerprint")
    assert _kinds(report) == {"frozen_param_changed": ["0.weight"], "trainable_not_updated": ["1.bias"]}
    assert report.violations[0].max_abs_change is None
    assert report.snapshot_bytes <= 8 * 4 + 8 * 2


def test_fingerprint_mode_extra_memory_is_under_one_percent_of_param_bytes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(512, 512) for _ in range(4)])
    model[:3].requires_grad_(False)
    param_bytes = sum(p.nbytes for p in model.parameters())

    def touch_head() -> None:
        with torch.no_grad():
            model[3].weight.mul_(0.5)
            model[3].bias.add_(1.0)

    with track_allocations() as mem:
        report = check_step(model, touch_head, mode="fingerprint")
    assert report.ok
    assert mem.peak <= 0.01 * param_bytes, (mem.peak, param_bytes)
    with track_allocations() as mem_exact:
        assert check_step(model, touch_head, mode="exact").ok
    frozen_bytes = sum(p.nbytes for p in model[:3].parameters())
    assert frozen_bytes <= mem_exact.peak <= frozen_bytes + 0.01 * param_bytes + (1 << 20)


def test_restore_puts_params_buffers_grads_optimizer_rng_and_modes_back() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _make_step(model, opt, x, y)()  # some optimizer state and grads exist
    before = capture_state(model)
    opt_before = copy.deepcopy(opt.state_dict())
    torch.manual_seed(123)
    expected_rand = torch.rand(3)
    torch.manual_seed(123)

    def step() -> None:
        model.eval()
        torch.rand(10)
        _make_step(model, opt, x, y)()
        for g in opt.param_groups:
            g["lr"] = 0.5

    report = check_step(model, step, optimizer=opt, restore=True, mode="fingerprint")
    assert report.by_kind("frozen_buffer_changed") == ()  # model.eval() inside the step
    assert before.differences(capture_state(model)) == []
    assert torch.equal(torch.rand(3), expected_rand)
    after = opt.state_dict()
    assert after["param_groups"] == opt_before["param_groups"]
    for k, saved in opt_before["state"].items():
        for name, value in saved.items():
            assert torch.equal(after["state"][k][name], value)
    assert not opt._optimizer_step_pre_hooks


def test_step_that_raises_leaves_no_hook_and_restores() -> None:
    model, x, y = _cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = capture_state(model)

    def boom() -> None:
        _make_step(model, opt, x, y)()
        raise RuntimeError("data loader died")

    with pytest.raises(RuntimeError, match="data loader died"):
        check_step(model, boom, optimizer=opt, restore=True)
    assert before.differences(capture_state(model)) == []
    assert not opt._optimizer_step_pre_hooks


def test_compiled_model_is_checked_under_its_own_names() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    compiled.train()
    report = check_step(compiled, _make_step(compiled, opt, x, y), optimizer=opt)
    assert report.wrappers == ("torch.compile",)
    assert report.by_kind("frozen_buffer_changed")[0].name == "backbone.1.running_mean"
    assert report.to_dict()["frozen_params"] == 8


def test_str_is_a_plain_table() -> None:
    model, x, y = _cnn()
    opt = torch.optim.SGD([model.fc.weight], lr=0.1)
    model.eval()
    text = str(check_step(model, _make_step(model, opt, x, y), optimizer=opt))
    lines = text.splitlines()
    assert lines[0] == "check_step (exact mode): FAILED, 18 violation(s)"
    # nothing has requires_grad=False: the report says no freeze invariant was checked
    assert lines[2] == "note: nothing was frozen, so no freeze invariant was checked (only that trainable params updated)"
    assert lines[4].split() == ["kind", "name", "max", "|change|"]
    assert "optimizer_missing_param  backbone.0.weight" in text and "\x1b" not in text


def test_bad_arguments_name_the_value_and_the_fix() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(TorchscopeError, match="mode='fast' is not 'exact' or 'fingerprint'"):
        check_step(model, lambda: None, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(TorchscopeError, match=re.escape("atol=0.1 needs mode='exact'")):
        check_step(model, lambda: None, mode="fingerprint", atol=0.1)
    with pytest.raises(TorchscopeError, match="atol=-1 must be a number >= 0"):
        check_step(model, lambda: None, atol=-1)
    with pytest.raises(TorchscopeError, match="step must be a callable"):
        check_step(model, 3)  # type: ignore[arg-type]
    with pytest.raises(PatternError, match="pattern 'wieght' matches no parameter or buffer; did you mean 'weight'"):
        check_step(model, lambda: None, frozen=["wieght"])


def test_check_freeze_trains_a_copy_and_leaves_the_model_alone() -> None:
    from torchscope._check import check_freeze, expected_frozen_names

    model, _, _ = _cnn()
    _freeze_backbone(model)
    before = capture_state(model)
    report = check_freeze(model, input_size=(4, 3, 8, 8), optimizer="adamw", weight_decay=0.01, steps=2)
    assert before.differences(capture_state(model)) == []
    assert {v.kind for v in report.violations} == {"frozen_buffer_changed"}
    assert report.optimizer_steps == 2
    assert check_freeze(model, input_size=(4, 3, 8, 8), train_bn=False, optimizer="adam").ok
    names = expected_frozen_names(model, freeze=["backbone"], unfreeze=["backbone.4"])
    assert names is not None and "backbone.1.running_mean" in names and "backbone.4.weight" not in names
    assert expected_frozen_names(model) is None
    with pytest.raises(TorchscopeError, match="optimizer='rmsprop' is not one of sgd, adam, adamw"):
        check_freeze(model, input_size=(2, 3, 8, 8), optimizer="rmsprop")


def test_check_freeze_reports_a_tied_weight_frozen_by_its_other_name() -> None:
    from torchscope._check import check_freeze, expected_frozen_names

    class TiedImage(nn.Module):  # float input, tied encoder/decoder weight
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Linear(6, 6, bias=False)
            self.dec = nn.Linear(6, 6)
            self.dec.weight = self.enc.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dec(torch.tanh(self.enc(x)))

    model = TiedImage()
    freeze(model, "enc")
    report = check_freeze(model, input_size=(4, 6), frozen=expected_frozen_names(model, freeze=["enc"]))
    (v,) = report.violations
    assert (v.kind, v.name) == ("tied_conflict", "dec.weight")


def test_nan_change_is_strict_json_and_lazy_params_are_refused() -> None:
    import json

    model = nn.Linear(2, 2).requires_grad_(False)

    def poison() -> None:
        with torch.no_grad():
            model.weight[0, 0] = float("nan")

    d = check_step(model, poison).to_dict()
    assert d["violations"][0] == {**d["violations"][0], "kind": "frozen_param_changed", "max_abs_change": "Infinity"}
    json.loads(json.dumps(d, allow_nan=False))
    with pytest.raises(TorchscopeError, match="uninitialized lazy params; run one forward pass"):
        check_step(nn.LazyLinear(3), lambda: None)


@settings(max_examples=25, deadline=None)
@given(
    which=st.integers(0, 3),
    index=st.integers(0, 10_000),
    mode=st.sampled_from(["exact", "fingerprint"]),
)
def test_any_single_element_write_to_a_frozen_tensor_is_caught(which: int, index: int, mode: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Linear(7, 2))
    model[:2].requires_grad_(False)
    targets = [model[0].weight, model[0].bias, model[1].weight, model[1].running_var]
    names = ["0.weight", "0.bias", "1.weight", "1.running_var"]
    target = targets[which]
    i = index % target.numel()

    def write_one() -> None:
        with torch.no_grad():
            flat = target.view(-1)
            flat[i] = torch.nextafter(flat[i], torch.tensor(float("inf")))
            model[2].weight.add_(1.0)
            model[2].bias.add_(1.0)

    report = check_step(model, write_one, mode=mode)  # type: ignore[arg-type]
    assert [v.name for v in report.violations] == [names[which]]


def test_merge_reports_across_ranks() -> None:
    from torchscope._distributed import merge_reports

    def part(violations: list[dict], trainable: tuple[str, ...], nbytes: int) -> tuple[dict, tuple[str, ...]]:
        report = {
            "ok": not violations, "mode": "exact", "checks": ["frozen_param_changed", "trainable_not_updated"],
            "params": 3, "frozen_params": 1, "trainable_params": 2, "buffers": 0, "frozen_buffers": 0,
            "bytes_checked": nbytes, "snapshot_bytes": nbytes // 2, "optimizer_steps": 1, "world_size": 1,
            "wrappers": [], "violations": violations,
        }
        return report, trainable

    def v(kind: str, name: str, change: float | None) -> dict:
        return {"kind": kind, "name": name, "max_abs_change": change, "cause": "c"}

    merged = merge_reports(
        [
            part([v("trainable_not_updated", "a", 0.0), v("frozen_param_changed", "f", 0.1)], ("a", "b"), 100),
            part([v("trainable_not_updated", "a", 0.0), v("trainable_not_updated", "b", 0.0),
                  v("frozen_param_changed", "f", 0.3)], ("a", "b"), 60),
        ],
        sharded=True,
    )
    # 'b' changed on rank 0, so it was updated; 'a' changed nowhere; the larger change of 'f' wins
    assert [(x.kind, x.name, x.max_abs_change) for x in merged.violations] == [
        ("frozen_param_changed", "f", 0.3),
        ("trainable_not_updated", "a", 0.0),
    ]
    assert (merged.world_size, merged.bytes_checked, merged.ok) == (2, 160, False)


def test_optimizer_step_that_never_ran_and_data_parallel_wrapper() -> None:
    model, x, y = _cnn()
    _freeze_backbone(model)
    model.eval()
    wrapped = nn.DataParallel(model)  # on a CPU-only machine it just calls the module
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)

    def forgot_step() -> None:  # e.g. a GradScaler that skipped every step
        opt.zero_grad()
        F.cross_entropy(wrapped(x), y).backward()

    report = check_step(wrapped, forgot_step, optimizer=opt)
    assert report.wrappers == ("DataParallel",) and report.optimizer_steps == 0
    assert [v.name for v in report.by_kind("trainable_not_updated")] == ["fc.weight", "fc.bias"]
    assert "optimizer.step() never ran" in report.violations[0].cause


def test_bf16_update_below_precision_is_explained() -> None:
    from torchscope._check import check_freeze

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)).to(torch.bfloat16)
    net[0].requires_grad_(False)
    report = check_freeze(net, input_size=(8, 4), lr=1e-4)
    assert [v.name for v in report.violations] == ["1.weight", "1.bias"]
    assert "below its dtype's precision" in report.violations[0].cause
    assert check_freeze(net, input_size=(8, 4), lr=0.5).ok


def test_str_prints_a_shared_cause_once_under_its_rows() -> None:
    from zoo import build

    import torchscope

    model, x = build("small_cnn")
    torchscope.freeze(model, "backbone")
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)

    def step() -> None:
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

    text = str(torchscope.check_step(model.train(), step, optimizer=opt))
    assert text.count("frozen_buffer_changed") == 6  # 2 BatchNorm layers x 3 buffers
    assert text.count("cause") == 1
    assert "cause (all 6 above): " in text


# ---------------------------------------------------------------------------------------------
# The one definition of "changed": max_abs_diff is exact where a cast to double is not.


def test_max_abs_diff_sees_an_int64_step_above_2_pow_53() -> None:
    from torchscope._check import max_abs_diff

    before = torch.tensor([2**53, 2**62, -(2**63)], dtype=torch.int64)
    now = before.clone()
    now[0] += 1  # 2**53 + 1 rounds to 2**53 as a double: a cast would call this unchanged
    assert float(max_abs_diff(now, before)) == 1.0
    assert float(max_abs_diff(before.clone(), before)) == 0.0
    # the largest possible difference overflows int64 and is still measured
    assert float(max_abs_diff(torch.tensor([-(2**63)]), torch.tensor([2**63 - 1]))) == 2.0**64


def test_max_abs_diff_counts_the_imaginary_part_and_keeps_equal_nans_equal() -> None:
    from torchscope._check import max_abs_diff

    before = torch.tensor([1 + 1j, complex("nan")], dtype=torch.complex64)
    now = before.clone()
    assert float(max_abs_diff(now, before)) == 0.0
    now[0] = 1 + 3j  # same real part
    assert float(max_abs_diff(now, before)) == pytest.approx(2.0)
    now[0] = before[0]
    now[1] = 0
    assert float(max_abs_diff(now, before)) == float("inf")


def test_check_step_reports_an_int64_buffer_moved_by_one_above_2_pow_53() -> None:
    class Counter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("ticks", torch.tensor([2**53], dtype=torch.int64))

    model = Counter()
    model.lin.requires_grad_(False)

    def step() -> None:
        model.ticks += 1

    report = check_step(model, step, frozen="ticks")
    assert [(v.kind, v.name, v.max_abs_change) for v in report.violations] == [
        ("frozen_buffer_changed", "ticks", 1.0)
    ]


# ---------------------------------------------------------------------------------------------
# One cause, said once: a backbone that was never frozen is one group with one fix.


def _never_frozen() -> tuple[nn.Module, torch.optim.Optimizer, Callable[[], None]]:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*[nn.Linear(4, 4) for _ in range(10)]))
    model.add_module("head", nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return model, opt, step


def test_a_backbone_never_frozen_is_one_cause_with_one_fix() -> None:
    from rendering import text

    from torchscope.render.check import render_check

    model, opt, step = _never_frozen()
    report = check_step(model, step, optimizer=opt, frozen="features.*")
    changed = report.by_kind("frozen_param_changed")
    assert len(changed) == 20 and len({v.cause for v in changed}) == 1
    groups = [g for g in report.groups if g.kind == "frozen_param_changed"]
    assert [(g.count, g.fix) for g in groups] == [(20, "torchscope.freeze(model, 'features.*')")]
    assert groups[0].few() == "features.0.weight, features.0.bias, features.1.weight and 17 more"
    assert report.to_dict()["groups"][0]["fix"] == "torchscope.freeze(model, 'features.*')"
    panel = text(render_check(report), width=120)
    assert panel.count("fix all: torchscope.freeze(model, 'features.*')") == 1
    assert panel.count("it has requires_grad=True") == 1
    assert "│   features.0.weight, features.0.bias, features.1.weight and 17 more (max |change| " in panel


def test_the_fix_never_freezes_a_param_that_must_train() -> None:
    from torchscope._check import covering_patterns, group_violations

    model, opt, step = _never_frozen()
    # features.9 is expected to train: the fix must not select it
    frozen = [f"features.{i}" for i in range(9)]
    report = check_step(model, step, optimizer=opt, frozen=frozen)
    (group,) = [g for g in report.groups if g.kind == "frozen_param_changed"]
    assert group.count == 18
    patterns = covering_patterns(group.names, keep=["features.9.weight", "features.9.bias", "head.weight"])
    assert patterns == [f"features.{i}.*" for i in range(9)]
    assert group.fix == f"torchscope.freeze(model, {', '.join(repr(p) for p in patterns)})"
    # violations of different causes stay apart; no template, no fix
    regrouped = group_violations(report.violations)
    assert {g.kind for g in regrouped} == {v.kind for v in report.violations}
    assert all(g.fix is None for g in regrouped if g.kind != "frozen_param_changed")
