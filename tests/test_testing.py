"""torchscope.testing: each helper passes on a correct model, fails with a table naming the culprit,
and (except the step runners) leaves the model exactly as it found it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from zoo import build

import torchscope
from torchscope import capture_state
from torchscope.errors import PatternError, SpecError, TorchscopeError
from torchscope.testing import (
    assert_batch_independent,
    assert_eval_mode,
    assert_frozen,
    assert_grads_finite,
    assert_loss_at_init,
    assert_no_unused_params,
    assert_output_shape,
    assert_overfits_one_batch,
    assert_param_count,
    assert_step_ok,
    assert_train_mode,
    assert_trainable_updated,
    expect_frozen,
    format_table,
    violation_table,
)


def sgd_step(model: nn.Module, x: Any, opt: torch.optim.Optimizer, *, set_to_none: bool = True) -> Callable[[], None]:
    def step() -> None:
        opt.zero_grad(set_to_none=set_to_none)
        out = model(x)
        out = out if isinstance(out, torch.Tensor) else out[0]
        out.square().mean().backward()
        opt.step()

    return step


def frozen_cnn() -> tuple[nn.Module, torch.Tensor, torch.optim.Optimizer]:
    model, x = build("small_cnn")
    model.backbone.requires_grad_(False)
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    return model, x, opt


# --------------------------------------------------------------------------------------------- frozen


def test_assert_frozen_passes_when_backbone_bn_in_eval() -> None:
    model, x, opt = frozen_cnn()
    model.train()
    model.backbone.eval()
    assert_frozen(model, sgd_step(model, x, opt), "backbone", optimizer=opt)


def test_assert_frozen_names_bn_drift() -> None:
    model, x, opt = frozen_cnn()
    model.train()
    with pytest.raises(AssertionError, match=r"6 of 14 tensors expected frozen \('backbone'\) changed") as info:
        assert_frozen(model, sgd_step(model, x, opt), "backbone", optimizer=opt)
    text = str(info.value)
    assert "backbone.1.running_mean" in text and "backbone.4.num_batches_tracked" in text
    assert "BatchNorm2d" in text and "ran in train mode" in text
    assert "fix: call .eval() on the frozen norm layers" in text
    assert "tensor(" not in text and "\x1b[" not in text


def test_assert_frozen_names_weight_decay_on_zero_grad() -> None:
    model, x = build("small_cnn")
    model.eval()
    # The pitfall: grads exist (zeros) when the backbone is frozen after a first step.
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    sgd_step(model, x, opt)()
    model.backbone.requires_grad_(False)
    with pytest.raises(AssertionError, match=r"frozen_param_changed\s+backbone\.0\.weight\s+\[8, 3, 3, 3\]"):
        assert_frozen(model, sgd_step(model, x, opt, set_to_none=False), "backbone", optimizer=opt)


def test_assert_frozen_unknown_pattern() -> None:
    model, x, opt = frozen_cnn()
    with pytest.raises(PatternError, match="'backbon' matches no"):
        assert_frozen(model, sgd_step(model, x, opt), "backbon")


def test_expect_frozen_context_manager() -> None:
    model, x, opt = frozen_cnn()
    model.train()
    model.backbone.eval()
    with expect_frozen(model, "backbone.*", optimizer=opt):
        sgd_step(model, x, opt)()
    model.backbone.train()
    with pytest.raises(AssertionError, match=r"expect_frozen: 6 of 14 tensors expected frozen") as info:
        with expect_frozen(model):
            sgd_step(model, x, opt)()
    # Both BatchNorm layers drifted: one cause, said once, with the count and a few names.
    causes = [line for line in str(info.value).splitlines() if line.startswith("  [")]
    assert causes == [
        "  [1] 6 tensors (backbone.1.running_mean, backbone.1.running_var, backbone.1.num_batches_tracked and 3 "
        "more): its BatchNorm2d module ran in train mode, so its running stats moved"
    ]


def test_expect_frozen_names_trainable_param() -> None:
    model, x = build("small_cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.eval()
    with pytest.raises(AssertionError, match=r"frozen_param_changed\s+fc\.weight\s+\[3, 8\]") as info:
        with expect_frozen(model, "fc", optimizer=opt):
            sgd_step(model, x, opt)()
    assert "requires_grad=True, in optimizer group 0 (lr=0.1" in str(info.value)


# --------------------------------------------------------------------------------------------- trainable / step


def test_assert_trainable_updated_head_missing_from_optimizer() -> None:
    model, x = build("small_cnn")
    model.eval()
    opt = torch.optim.SGD(model.backbone.parameters(), lr=0.1)  # the head was replaced after this
    with pytest.raises(AssertionError, match=r"2 of 2 trainable parameters were not updated") as info:
        assert_trainable_updated(model, sgd_step(model, x, opt), "fc", optimizer=opt)
    assert "trainable_not_updated  fc.weight  [3, 8]" in str(info.value)
    assert "in no optimizer param group" in str(info.value)


def test_assert_trainable_updated_passes_and_rejects_frozen_pattern() -> None:
    model, x, opt = frozen_cnn()
    model.eval()
    assert_trainable_updated(model, sgd_step(model, x, opt), optimizer=opt)
    with pytest.raises(PatternError, match="'backbone' matches no trainable parameter"):
        assert_trainable_updated(model, sgd_step(model, x, opt), "backbone")


def test_assert_step_ok() -> None:
    model, x, opt = frozen_cnn()
    model.eval()
    assert_step_ok(model, sgd_step(model, x, opt), optimizer=opt)
    bad = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)
    # The 8 frozen backbone params sit in the optimizer with weight decay: 8 violations, one cause.
    with pytest.raises(
        AssertionError,
        match=r"assert_step_ok: 8 invariants of the training step violated \(8 frozen, 2 trainable params checked\)",
    ) as info:
        assert_step_ok(model, sgd_step(model, x, bad), optimizer=bad)
    assert "optimizer_frozen_param  backbone.0.weight  [8, 3, 3, 3]" in str(info.value)
    assert "in param group 0 with weight_decay=0.01" in str(info.value)


# --------------------------------------------------------------------------------------------- grads


def test_assert_grads_finite() -> None:
    model, x = build("small_cnn")
    model(x).sum().backward()
    assert_grads_finite(model)
    model.fc.weight.grad[0, 0] = float("nan")
    model.fc.bias.grad[1] = float("inf")
    with pytest.raises(AssertionError, match=r"2 of 10 gradients are not finite") as info:
        assert_grads_finite(model)
    assert "fc.weight  [3, 8]  1/24  0/24" in str(info.value)
    assert "fc.bias    [3]     0/3   1/3" in str(info.value)


def test_assert_no_unused_params_names_aux_and_unused() -> None:
    model, x = build("aux_head")
    model.train()
    before = capture_state(model)
    with pytest.raises(AssertionError, match=r"4 of 8 trainable parameters got no gradient") as info:
        assert_no_unused_params(model, lambda: model(x).logits.square().mean())
    assert "aux.weight     [3, 8]  Linear" in str(info.value)
    assert capture_state(model).differences(before) == []
    model.unused.requires_grad_(False)
    assert_no_unused_params(model, lambda: sum(o.square().mean() for o in model(x)))
    assert capture_state(model).differences(before) == [
        "requires_grad differs at ['unused.bias', 'unused.weight']"
    ]


def test_assert_no_unused_params_restores_after_a_full_step() -> None:
    model, x = build("shared_child")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = capture_state(model)
    assert_no_unused_params(model, sgd_step(model, x, opt))
    assert capture_state(model).differences(before) == []


# --------------------------------------------------------------------------------------------- counts and modes


def test_assert_param_count() -> None:
    model, _ = build("tied")
    # embed (20x8, tied with out) + proj (8x8 + 8): the tied tensor counts once.
    assert_param_count(model, total=232, trainable=232)
    model.embed.requires_grad_(False)
    with pytest.raises(AssertionError, match=r"trainable\s+232\s+72\s+-160") as info:
        assert_param_count(model, trainable=232)
    assert "embed  160     0" in str(info.value)
    with pytest.raises(TorchscopeError, match="needs total= or trainable="):
        assert_param_count(model)
    with pytest.raises(TorchscopeError, match="total=-1 must be an int >= 0"):
        assert_param_count(model, total=-1)


def test_assert_param_count_lazy() -> None:
    model, x = build("lazy")
    with pytest.raises(TorchscopeError, match="lazy parameters; run one forward pass first"):
        assert_param_count(model, total=1)
    model(x)
    assert_param_count(model, total=7 * 4 + 4 + 4 * 2 + 2)


def test_assert_eval_and_train_mode() -> None:
    model, _ = build("small_cnn")
    model.eval()
    assert_eval_mode(model)
    model.fc.train()
    with pytest.raises(AssertionError, match=r"1 module in the wrong mode\n\n  module  type    mode   expected"):
        assert_eval_mode(model)
    model.train()
    assert_train_mode(model)
    with pytest.raises(AssertionError, match=r"backbone\.1  BatchNorm2d  train  eval"):
        assert_train_mode(model, except_="backbone.1")
    model.backbone[1].eval()
    assert_train_mode(model, except_=["backbone.1"])
    with pytest.raises(PatternError, match="'bn' matches no module"):
        assert_train_mode(model, except_=["bn"])


# --------------------------------------------------------------------------------------------- shapes


def test_assert_output_shape_tensor_tuple_dict_namedtuple() -> None:
    model, x = build("small_cnn")
    assert_output_shape(model, x, (4, 3))
    assert_output_shape(model, x, torch.Size([4, 3]))
    assert_output_shape(model, x, (None, -1))
    with pytest.raises(AssertionError, match=r"out     \[4, 5\]    \[4, 3\]"):
        assert_output_shape(model, x, (4, 5))

    multi, mx = build("multi_output")
    assert_output_shape(multi, mx, ((2, 3), (2, 6)))
    assert_output_shape(multi, mx, {"logits": (2, 3), "features": (None, 6)})
    with pytest.raises(AssertionError, match=r"out\.features  \[2, 7\]    \[2, 6\]"):
        assert_output_shape(multi, mx, {"logits": (2, 3), "features": (2, 7)})
    with pytest.raises(AssertionError, match=r"out\.extra  \[2\]       missing"):
        assert_output_shape(multi, mx, {"extra": (2,)})

    dmodel, dx = build("dict_input")
    assert_output_shape(dmodel, dx, {"logits": (2, 2), "hidden": (2, 4)})
    with pytest.raises(AssertionError, match=r"out\['logits'\]  \[2, 3\]    \[2, 2\]"):
        assert_output_shape(dmodel, dx, {"logits": (2, 3)})
    with pytest.raises(SpecError, match="is not a shape"):
        assert_output_shape(model, x, "4x3")


# --------------------------------------------------------------------------------------------- recipe checks


class MixesBatch(nn.Module):
    """The classic bug: a view that moves the batch axis."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)  # (B, 4)
        return h.t().reshape(x.shape[0], 4)  # wrong: should be h itself


def test_assert_batch_independent() -> None:
    model, x = build("small_cnn")
    model.eval()
    assert_batch_independent(model, x)
    model.train()
    before = capture_state(model)
    with pytest.raises(AssertionError, match=r"4 of 4 output samples depend on other input samples") as info:
        assert_batch_independent(model, x)
    assert "0              1-3" in str(info.value)
    assert "fix: BatchNorm2d 'backbone.1' (and 1 more) is in train mode" in str(info.value)
    assert capture_state(model).differences(before) == []


def test_assert_batch_independent_names_which_samples_leak() -> None:
    model = MixesBatch()
    with pytest.raises(AssertionError, match=r"4 of 4 output samples depend on other input samples") as info:
        assert_batch_independent(model, torch.randn(4, 4))
    # row i of h.t().reshape(4, 4) is column i of h: output sample i reads every input sample, and
    # the "depends on" column lists the others (never i itself).
    rows = str(info.value).splitlines()[4:8]
    assert [r[:41].rstrip() for r in rows] == [
        "  0              1-3",
        "  1              0, 2-3",
        "  2              0-1, 3",
        "  3              0-2",
    ]
    assert "fix: look for view/reshape/transpose calls that move the batch dimension (dim 0)" in str(info.value)
    with pytest.raises(SpecError, match="batch size 1"):
        assert_batch_independent(model, torch.randn(1, 4))
    with pytest.raises(SpecError, match="no floating-point tensor"):
        assert_batch_independent(model, torch.zeros(2, 4, dtype=torch.long))


def test_assert_loss_at_init() -> None:
    torch.manual_seed(0)
    model = nn.Linear(8, 5)
    nn.init.zeros_(model.weight)
    x, y = torch.randn(32, 8), torch.randint(0, 5, (32,))
    assert_loss_at_init(model, x, y, num_classes=5)
    with torch.no_grad():
        model.weight.normal_(0, 10.0)
    with torch.no_grad():
        loss = float(nn.functional.cross_entropy(model(x), y))
    with pytest.raises(AssertionError, match=rf"loss at init {loss:.3g} is not near -log\(1/5\) = 1\.61\n") as info:
        assert_loss_at_init(model, x, y, num_classes=5)
    assert "fix: initialise the last layer small" in str(info.value)
    with pytest.raises(SpecError, match="num_classes=1 must be an int >= 2"):
        assert_loss_at_init(model, x, y, num_classes=1)


def test_assert_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    batch = (torch.randn(8, 6), torch.randint(0, 3, (8,)))
    before = capture_state(model)
    assert_overfits_one_batch(model, batch, steps=150, target_loss=0.05, lr=0.05)
    assert capture_state(model).differences(before) == []
    model[0].requires_grad_(False)
    model[2].requires_grad_(False)
    with pytest.raises(TorchscopeError, match="no trainable parameter"):
        assert_overfits_one_batch(model, batch)
    model[2].requires_grad_(True)
    with pytest.raises(AssertionError, match=r"after 3 steps on one batch, target 0\.05\n\n  step  loss"):
        assert_overfits_one_batch(model, batch, steps=3, lr=1e-4)


# --------------------------------------------------------------------------------------------- state


NON_STEP_CALLS: dict[str, Callable[[nn.Module, Any], None]] = {
    "output_shape": lambda m, x: assert_output_shape(m, x, (None, None)),
    "batch_independent": lambda m, x: assert_batch_independent(m, x),
    "eval_mode": lambda m, x: assert_eval_mode(m),
    "train_mode": lambda m, x: assert_train_mode(m),
    "grads_finite": lambda m, x: assert_grads_finite(m),
    "no_unused": lambda m, x: assert_no_unused_params(m, lambda: m(x).square().mean()),
    "param_count": lambda m, x: assert_param_count(m, total=1),
    "loss_at_init": lambda m, x: assert_loss_at_init(m, x, torch.zeros(4, dtype=torch.long), 3),
    "overfits": lambda m, x: assert_overfits_one_batch(m, (x, torch.zeros(4, dtype=torch.long)), steps=2),
}


@pytest.mark.parametrize("call", sorted(NON_STEP_CALLS))
def test_helpers_leave_the_model_unchanged(call: str) -> None:
    model, x = build("small_cnn")
    model.train()
    model(x).sum().backward()  # grads present: they must survive too
    before = capture_state(model)
    try:
        NON_STEP_CALLS[call](model, x)
    except AssertionError:
        pass  # failing or not, the model is untouched
    assert capture_state(model).differences(before) == []


class Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.bn(x)
        raise RuntimeError("boom in forward")


@pytest.mark.parametrize("call", ["output_shape", "batch_independent", "loss_at_init", "overfits", "no_unused"])
def test_helpers_restore_state_when_forward_raises(call: str) -> None:
    model = Boom().train()
    x = torch.randn(4, 3)
    before = capture_state(model)
    with pytest.raises(RuntimeError, match="boom in forward"):
        NON_STEP_CALLS[call](model, x)
    assert capture_state(model).differences(before) == []


def test_format_table_caps_rows() -> None:
    text = format_table(["a"], [[str(i)] for i in range(25)], max_rows=3)
    assert text.splitlines() == ["  a", "  -", "  0", "  1", "  2", "  ... and 22 more"]


def test_assert_batch_independent_refuses_a_blind_check() -> None:
    model = nn.Linear(3, 2)
    nn.init.zeros_(model.weight)
    with pytest.raises(SpecError, match="every gradient of the outputs with respect to x is zero"):
        assert_batch_independent(model, torch.randn(4, 3))


def test_assert_no_unused_params_when_the_loss_reaches_no_trainable_param() -> None:
    model, x = build("aux_head")
    model.stem.requires_grad_(False)
    model.fc.requires_grad_(False)
    model.eval()
    with pytest.raises(AssertionError, match=r"4 of 4 trainable parameters got no gradient"):
        assert_no_unused_params(model, lambda: model(x).square().mean())


def test_assert_overfits_one_batch_when_the_loss_reaches_no_trainable_param() -> None:
    model, x = build("aux_head")
    model.stem.requires_grad_(False)
    model.fc.requires_grad_(False)
    model.eval()
    with pytest.raises(AssertionError, match="fix: the loss does not depend on any trainable parameter"):
        assert_overfits_one_batch(model, (x, torch.zeros(4, dtype=torch.long)), steps=5)


def test_assert_trainable_updated_sees_the_same_bit_flipped_in_two_elements() -> None:
    # Two elements changing by the same bit pattern cancel out in an XOR-reduced fingerprint.
    model = nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5], [0.25]]))
        model.bias.copy_(torch.tensor([1.0, 2.0]))

    def step() -> None:
        with torch.no_grad():
            model.weight.mul_(2)
            model.bias.copy_((model.bias.view(torch.int32) ^ 1).view(torch.float32))

    assert_trainable_updated(model, step)
    assert bool((model.bias != torch.tensor([1.0, 2.0])).all())


def test_public_names_are_importable_from_torchscope_testing_and_say_so() -> None:
    import torchscope.testing as testing

    public = [*testing.__all__, "format_table", "violation_table"]
    assert {name: getattr(testing, name).__module__ for name in public} == dict.fromkeys(public, "torchscope.testing")


class ComplexAndIds(nn.Module):
    """A frozen complex param and a frozen int64 buffer above 2**53 (float64 has 53 bits of mantissa)."""

    def __init__(self) -> None:
        super().__init__()
        self.z = nn.Parameter(torch.tensor([1 + 1j, 2 + 0j]), requires_grad=False)
        self.register_buffer("ids", torch.tensor([2**53, 7], dtype=torch.int64))
        self.fc = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_expect_frozen_and_check_step_agree_on_complex_and_large_int64() -> None:
    model = ComplexAndIds()
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)

    def step() -> None:
        sgd_step(model, torch.randn(3, 2), opt)()
        with torch.no_grad():
            model.z[0] += 0.5j  # only the imaginary part moves: a cast to double drops it
            model.ids[0] += 1  # 2**53 + 1 rounds back to 2**53 in double

    expected = [("frozen_buffer_changed", "ids", 1.0), ("frozen_param_changed", "z", 0.5)]
    report = torchscope.check_step(model, step, optimizer=opt)
    assert sorted((v.kind, v.name, v.max_abs_change) for v in report.violations) == expected
    with pytest.raises(AssertionError, match=r"expect_frozen: 2 of 2 tensors expected frozen \(requires_grad=False\)") as info:
        with expect_frozen(model, optimizer=opt):
            step()
    found = info.value.report["violations"]  # type: ignore[attr-defined]
    assert sorted((v["kind"], v["name"], v["max_abs_change"]) for v in found) == expected
    assert int(model.ids[0]) == 2**53 + 2 and complex(model.z[0]) == 1 + 2j


class Backbone(nn.Module):
    """Ten blocks under ``features`` and a head: 20 backbone params."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(*[nn.Sequential(nn.Linear(4, 4), nn.Tanh()) for _ in range(10)])
        self.classifier = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def trainable(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


@pytest.mark.parametrize("check", ["expect_frozen", "assert_frozen"])
def test_a_backbone_never_frozen_is_one_cause_with_the_one_call_that_fixes_it(check: str) -> None:
    model = Backbone()
    x = torch.randn(3, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def run(opt: torch.optim.Optimizer) -> None:
        if check == "expect_frozen":
            with expect_frozen(model, "features.*", optimizer=opt):
                sgd_step(model, x, opt)()
        else:
            assert_frozen(model, sgd_step(model, x, opt), "features.*", optimizer=opt)

    with pytest.raises(AssertionError, match=rf"{check}: 20 of 20 tensors expected frozen \('features\.\*'\) changed"):
        run(opt)
    with pytest.raises(AssertionError) as info:
        run(opt)
    lines = str(info.value).splitlines()
    causes = [line for line in lines if line.startswith("  [")]
    assert len(causes) == 1
    assert causes[0].startswith(
        "  [1] 20 tensors (features.0.0.weight, features.0.0.bias, features.1.0.weight and 17 more): "
        "it has requires_grad=True"
    )
    assert [line for line in lines if "fix: torchscope.freeze(" in line] == ["      fix: torchscope.freeze(model, 'features.*')"]
    assert str(info.value).count("requires_grad=True") == 1
    [group] = info.value.report["groups"]  # type: ignore[attr-defined]
    assert (group["kind"], group["count"], group["fix"]) == ("frozen_param_changed", 20, "torchscope.freeze(model, 'features.*')")
    assert group["names"] == [n for n in trainable(model) if n.startswith("features.")]
    # The call fixes every one of them, and leaves the head trainable.
    eval(group["fix"], {"torchscope": torchscope, "model": model})
    assert trainable(model) == ["classifier.weight", "classifier.bias"]
    run(torch.optim.SGD(model.classifier.parameters(), lr=0.1))


def test_the_one_call_leaves_the_params_outside_the_check_trainable() -> None:
    model = Backbone()
    x = torch.randn(3, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(AssertionError, match=r"4 of 4 tensors expected frozen") as info:
        with expect_frozen(model, "features.0.*", "features.1.*", optimizer=opt):
            sgd_step(model, x, opt)()
    [group] = info.value.report["groups"]  # type: ignore[attr-defined]
    # 'features.*' would also freeze features.2-9, which the test keeps trainable.
    assert group["fix"] == "torchscope.freeze(model, 'features.0.0.*', 'features.1.0.*')"
    assert "  [1] 4 tensors (features.0.0.weight, features.0.0.bias, features.1.0.weight and 1 more): " in str(info.value)


def test_violation_table_groups_causes_and_keeps_singletons_plain() -> None:
    rows = [
        {"kind": "frozen_buffer_changed", "name": f"bn{i}.running_mean", "shape": "(4,)", "max_abs_change": 0.1,
         "cause": "its BatchNorm2d module ran in train mode", "fix": "call .eval()"}
        for i in range(5)
    ] + [{"kind": "frozen_param_changed", "name": "fc.weight", "shape": "(2, 4)", "max_abs_change": 1.0,
          "cause": "something wrote to it", "fix": ""}]
    text = violation_table(rows, max_rows=3)
    assert text.splitlines()[2:] == [
        "  frozen_buffer_changed  bn0.running_mean  (4,)   0.1      [1]",
        "  frozen_buffer_changed  bn1.running_mean  (4,)   0.1      [1]",
        "  frozen_buffer_changed  bn2.running_mean  (4,)   0.1      [1]",
        "  ... and 3 more",
        "",
        "  [1] 5 tensors (bn0.running_mean, bn1.running_mean, bn2.running_mean and 2 more): its BatchNorm2d module "
        "ran in train mode",
        "      fix: call .eval()",
        "  [2] something wrote to it",
    ]
