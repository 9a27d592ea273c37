"""preserved() puts every piece of model state back, also when the block raises."""

from __future__ import annotations

import random

import pytest
import torch
from zoo import build

from torchscope._state import capture_state, preserved


def _mess_up(model: torch.nn.Module, x: object) -> None:
    model.train()
    out = model(x)
    tensors = out.values() if isinstance(out, dict) else (out if isinstance(out, tuple) else (out,))
    loss = sum(t.float().sum() for t in tensors)
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        loss.backward()
    for p in model.parameters():
        p.requires_grad_(not p.requires_grad)
    for m in model.modules():
        m.register_forward_hook(lambda *a: None)
        m.register_forward_pre_hook(lambda *a: None)
        m.register_full_backward_hook(lambda *a: None)
    model.eval()
    torch.rand(3)
    random.random()


def test_preserved_restores_everything(zoo_model: tuple[torch.nn.Module, object]) -> None:
    model, x = zoo_model
    model(x)  # materialise lazy modules before the first capture
    before = capture_state(model)
    with preserved(model):
        _mess_up(model, x)
    assert before.differences(capture_state(model)) == []


def test_preserved_restores_on_error_and_rng() -> None:
    model, x = build("small_cnn")
    before = capture_state(model)
    rng_before = torch.get_rng_state()
    py_before = random.getstate()
    with pytest.raises(RuntimeError, match="boom"), preserved(model):
        _mess_up(model, x)
        raise RuntimeError("boom")
    assert before.differences(capture_state(model)) == []
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert random.getstate() == py_before


def test_preserved_keeps_grad_objects_and_values() -> None:
    model, x = build("small_cnn")
    model(x).sum().backward()
    grad = model.fc.weight.grad
    assert grad is not None
    value = grad.clone()
    with preserved(model):
        model(x).sum().backward()  # accumulates into the same grad tensor
        model.zero_grad(set_to_none=True)
    assert model.fc.weight.grad is grad
    assert torch.equal(grad, value)


def test_preserved_params_opt_in() -> None:
    model, _ = build("small_cnn")
    w = model.fc.weight.detach().clone()
    with preserved(model, params=True), torch.no_grad():
        model.fc.weight.add_(1.0)
    assert torch.equal(model.fc.weight, w)
    with preserved(model), torch.no_grad():
        model.fc.weight.add_(1.0)
    assert not torch.equal(model.fc.weight, w)


def test_capture_state_sees_each_kind_of_change() -> None:
    model, x = build("small_cnn")
    before = capture_state(model)
    model.train()(x)  # BatchNorm running stats move
    diffs = before.differences(capture_state(model))
    assert any("running_mean" in d for d in diffs)
    model.backbone[0].weight.requires_grad_(False)
    model.fc.register_forward_hook(lambda *a: None)
    model.eval()
    diffs = before.differences(capture_state(model))
    assert any(d.startswith("requires_grad") for d in diffs)
    assert any(d.startswith("hooks") for d in diffs)
    assert any(d.startswith("training") for d in diffs)


def test_lazy_modules_can_be_captured_and_preserved_before_their_first_forward() -> None:
    model, x = build("lazy")
    before = capture_state(model)
    with preserved(model, params=True):
        model.lazy.weight.requires_grad  # noqa: B018 - reading a flag is allowed on placeholders
    assert before.differences(capture_state(model)) == []
    model(x)  # materialising the lazy weights is a change, and the capture sees it
    assert any("lazy.weight" in d for d in before.differences(capture_state(model)))
