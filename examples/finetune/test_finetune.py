"""A worked test suite for a resnet18 fine-tune: one test per pitfall (see docs/testing.md).

Each test checks the real code in finetune.py, then shows the check catching the mistake it guards
against, so you can see the failure message you would get.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from finetune import (
    NUM_CLASSES,
    build_model,
    inception_loss,
    make_optimizer,
    predict,
    set_train_mode,
    train_step,
)
from torch import nn

import torchscope
from torchscope.testing import (
    assert_batch_independent,
    assert_eval_mode,
    assert_frozen,
    assert_loss_at_init,
    assert_no_unused_params,
    assert_output_shape,
    assert_overfits_one_batch,
    assert_param_count,
    assert_step_ok,
    assert_train_mode,
    assert_trainable_updated,
    expect_frozen,
)

Batch = tuple[torch.Tensor, torch.Tensor]
BACKBONE = ("conv1", "bn1", "layer*")


def test_shapes_and_counts(model: nn.Module, batch: Batch) -> None:
    assert_output_shape(model, batch[0], (4, NUM_CLASSES))
    # resnet18 has 11,689,512 params; the 1000-class fc (513,000) became a 5-class one (2,565).
    assert_param_count(model, total=11_689_512 - 513_000 + 2_565, trainable=2_565)


def test_every_invariant_of_the_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    assert_step_ok(model, lambda: train_step(model, optimizer, batch), optimizer=optimizer)


# --- Pitfall 0: the backbone was never frozen. All 60 backbone params move for the same reason, so
# the failure says that reason once, with the one call that freezes them all.


def test_pitfall_backbone_never_frozen_gives_the_one_call(batch: Batch) -> None:
    model = torchvision.models.resnet18(weights=None)
    torchscope.replace_head(model, NUM_CLASSES)  # ... and no freeze_backbone(model)
    optimizer = make_optimizer(model)
    with pytest.raises(AssertionError, match=r"expect_frozen: 120 of 120 tensors expected frozen") as info:
        with expect_frozen(model, *BACKBONE):
            train_step(model, optimizer, batch)
    fix = "torchscope.freeze(model, 'conv1.weight', 'bn1.*', 'layer1.*', 'layer2.*', 'layer3.*', 'layer4.*')"
    assert f"      fix: {fix}\n" in str(info.value)
    assert str(info.value).count("requires_grad=True") == 1
    eval(fix, {"torchscope": torchscope, "model": model})  # the one call, as printed
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    optimizer = make_optimizer(model)
    with expect_frozen(model, *BACKBONE):
        train_step(model, optimizer, batch)


# --- Pitfall 1: BatchNorm drift. requires_grad=False does not stop running stats moving in train mode.


def test_frozen_backbone_bn_does_not_drift(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    with expect_frozen(model, *BACKBONE):
        train_step(model, optimizer, batch)
    set_train_mode(model)
    assert_train_mode(model, except_=["bn1", "layer*.bn*", "layer*.downsample.1"])


def test_pitfall_bn_drift_is_caught(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    def naive_step() -> None:
        model.train()  # puts the frozen BatchNorm layers back into train mode
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
        optimizer.step()

    with pytest.raises(AssertionError, match=r"frozen_buffer_changed\s+bn1\.running_mean"):
        assert_frozen(model, naive_step, *BACKBONE, optimizer=optimizer)


# --- Pitfall 2: zero grads + weight decay. A param frozen after it had a grad keeps a zero grad, and
# AdamW's decoupled weight decay shrinks it every step, though "frozen".


def test_frozen_weights_do_not_decay(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    assert_frozen(model, lambda: train_step(model, optimizer, batch), *BACKBONE, optimizer=optimizer)


def test_pitfall_weight_decay_on_zero_grads_is_caught(batch: Batch) -> None:
    model = build_model()
    model.layer4.requires_grad_(True)  # warm-up phase: layer4 trains too
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)  # over everything
    train_step(model, optimizer, batch)
    model.layer4.requires_grad_(False)  # freeze layer4; its .grad stays allocated

    def step() -> None:
        set_train_mode(model)
        optimizer.zero_grad(set_to_none=False)  # zeros, not None: the optimizer still steps layer4
        nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
        optimizer.step()

    with pytest.raises(AssertionError, match=r"frozen_param_changed\s+layer4\.0\.conv1\.weight") as info:
        assert_frozen(model, step, "layer4", optimizer=optimizer)
    assert "weight_decay=0.05" in str(info.value)


# --- Pitfall 3: the new head is missing from the optimizer (optimizer built before replace_head).


def test_head_is_trained(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch) -> None:
    assert_trainable_updated(model, lambda: train_step(model, optimizer, batch), "fc", optimizer=optimizer)


def test_pitfall_head_missing_from_optimizer_is_caught(batch: Batch) -> None:
    model = torchvision.models.resnet18(weights=None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # built too early
    torchscope.replace_head(model, NUM_CLASSES)
    torchscope.freeze_backbone(model)
    with pytest.raises(AssertionError, match=r"trainable_not_updated\s+fc\.weight") as info:
        assert_trainable_updated(model, lambda: train_step(model, optimizer, batch), "fc", optimizer=optimizer)
    assert "in no optimizer param group" in str(info.value)


# --- Pitfall 4: inception_v3's aux head is unused when the loss only reads .logits.


@pytest.fixture(scope="module")
def inception() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    torchscope.replace_head(model, NUM_CLASSES)
    model.AuxLogits.fc = nn.Linear(768, NUM_CLASSES)
    # Fine-tune the two heads only; inception needs 299x299 inputs for its aux branch.
    for p in model.parameters():
        p.requires_grad_(False)
    model.fc.requires_grad_(True)
    model.AuxLogits.requires_grad_(True)
    return model.train()


def test_inception_aux_head_gets_gradients(inception: nn.Module) -> None:
    x, y = torch.randn(2, 3, 299, 299), torch.tensor([0, 1])
    assert_no_unused_params(inception, lambda: inception_loss(inception(x), y))
    with pytest.raises(AssertionError, match=r"AuxLogits\.fc\.weight") as info:
        assert_no_unused_params(inception, lambda: nn.functional.cross_entropy(inception(x).logits, y))
    assert "got no gradient" in str(info.value)


# --- Pitfall 5: inference in train mode. BatchNorm then normalises with the batch's own stats, so a
# sample's prediction depends on the other samples in its batch.


def trained_head(model: nn.Module) -> nn.Module:
    # The zero-initialised head makes every output constant; a trained head is not.
    nn.init.normal_(model.fc.weight, std=0.1)
    return model


def test_inference_runs_in_eval_mode(model: nn.Module, batch: Batch) -> None:
    trained_head(model)
    predict(model, batch[0])
    assert_eval_mode(model)
    assert_batch_independent(model, batch[0])


def test_pitfall_train_mode_inference_is_caught(model: nn.Module, batch: Batch) -> None:
    trained_head(model).train()
    with pytest.raises(AssertionError, match=r"output samples depend on other input samples"):
        assert_batch_independent(model, batch[0])


# --- Recipe checks: the loss starts at log(C), and the head can memorise one batch.


def test_loss_at_init(model: nn.Module, batch: Batch) -> None:
    assert_loss_at_init(model, *batch, num_classes=NUM_CLASSES)


def test_overfits_one_batch(model: nn.Module, batch: Batch) -> None:
    set_train_mode(model)
    assert_overfits_one_batch(model, batch, steps=30, target_loss=0.05, lr=0.1)


def test_checks_are_reported(model: nn.Module, batch: Batch, torchscope_report: object) -> None:
    assert_output_shape(model, batch[0], (4, NUM_CLASSES))
    make_optimizer(model)
    assert [r["check"] for r in torchscope_report] == ["assert_output_shape"]  # type: ignore[attr-defined]
