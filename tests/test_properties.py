"""Properties over random small models (hypothesis):

- check_step flags exactly the frozen tensors a planted mutation touched, and exactly the trainable
  tensors the step left unchanged;
- expect_frozen names exactly the planted tensors among those its patterns select;
- every torchscope call leaves the model as it found it, failing or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import torchscope
from torchscope import capture_state, check_step
from torchscope.errors import TorchscopeError
from torchscope.strategies import SmallNet, freeze_patterns, inputs_for, small_models
from torchscope.testing import (
    assert_batch_independent,
    assert_eval_mode,
    assert_grads_finite,
    assert_loss_at_init,
    assert_no_unused_params,
    assert_output_shape,
    assert_overfits_one_batch,
    assert_param_count,
    assert_train_mode,
    expect_frozen,
)

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def tensors_by_name(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every name (aliases included) of every parameter and buffer."""
    out: dict[str, torch.Tensor] = dict(model.named_parameters(remove_duplicate=False))
    out.update({n: b for n, b in model.named_buffers(remove_duplicate=False) if b is not None})
    return out


def unique(items: list[tuple[str, torch.Tensor]]) -> list[tuple[str, torch.Tensor]]:
    seen: dict[int, tuple[str, torch.Tensor]] = {}
    for name, t in items:
        seen.setdefault(id(t), (name, t))
    return list(seen.values())


def frozen_candidates(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Params with requires_grad=False, and the buffers of modules whose own params are all frozen."""
    params = [(n, p) for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad]
    buffers = []
    for mname, m in model.named_modules():
        own = list(m.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            buffers += [(f"{mname}.{b}" if mname else b, t) for b, t in m.named_buffers(recurse=False)]
    return unique(params + buffers)


def plant(tensors: list[tuple[str, torch.Tensor]]) -> None:
    with torch.no_grad():
        for _, t in tensors:
            t.add_(1)


def train_step(model: nn.Module, x: torch.Tensor, opt: torch.optim.Optimizer | None, after: Callable[[], None]):
    def step() -> None:
        if opt is not None:
            opt.zero_grad()
        loss = model(x).square().mean()
        if loss.requires_grad:  # everything frozen: nothing to backpropagate
            loss.backward()
        if opt is not None:
            opt.step()
        after()

    return step


@st.composite
def frozen_setups(draw: Any) -> tuple[SmallNet, torch.Tensor, list[str]]:
    model = draw(small_models())
    patterns = draw(freeze_patterns(model))
    x = draw(inputs_for(model))
    if patterns:
        torchscope.freeze(model, *patterns)
    # Eval mode: running stats move only where a mutation is planted.
    model.eval()
    return model, x, patterns


@settings(PROPERTY, max_examples=120)
@given(frozen_setups(), st.data())
def test_check_step_flags_exactly_the_planted_mutations(setup: Any, data: st.DataObject) -> None:
    model, x, _ = setup
    candidates = frozen_candidates(model)
    planted = data.draw(st.lists(st.sampled_from(candidates), unique_by=lambda nt: id(nt[1])) if candidates else st.just([]))
    trainable = unique([(n, p) for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad])
    opt = torch.optim.SGD([p for _, p in trainable], lr=0.1) if trainable else None
    before = {id(p): p.detach().clone() for _, p in trainable}

    report = check_step(model, train_step(model, x, opt, lambda: plant(planted)), optimizer=opt)

    names = tensors_by_name(model)
    flagged = {id(names[v.name]) for v in report.violations if v.kind.startswith("frozen_")}
    assert flagged == {id(t) for _, t in planted}, str(report)
    not_updated = {id(names[v.name]) for v in report.violations if v.kind == "trainable_not_updated"}
    assert not_updated == {id(p) for _, p in trainable if torch.equal(p.detach(), before[id(p)])}, str(report)
    assert not [v for v in report.violations if v.kind.startswith("optimizer_") or v.kind == "nonfinite"], str(report)


@settings(PROPERTY, max_examples=80)
@given(frozen_setups(), st.data())
def test_expect_frozen_names_exactly_the_planted_tensors(setup: Any, data: st.DataObject) -> None:
    model, x, patterns = setup
    if not patterns:
        return
    names = tensors_by_name(model)
    selected = unique([(n, t) for n, t in names.items() if any(torchscope_name_matches(n, p) for p in patterns)])
    planted = data.draw(st.lists(st.sampled_from(selected), unique_by=lambda nt: id(nt[1])))
    step = train_step(model, x, None, lambda: plant(planted))
    if not planted:
        with expect_frozen(model, *patterns):
            step()
        return
    title = rf"expect_frozen: {len(planted)} of {len(selected)} tensors? expected frozen \("
    with pytest.raises(AssertionError, match=title) as info:
        with expect_frozen(model, *patterns):
            step()
    flagged = {id(names[v["name"]]) for v in info.value.report["violations"]}  # type: ignore[attr-defined]
    assert flagged == {id(t) for _, t in planted}


def torchscope_name_matches(name: str, pattern: str) -> bool:
    from torchscope._patterns import name_matches

    return name_matches(name, pattern)


def backward(out: torch.Tensor) -> None:
    if out.requires_grad:  # everything frozen: nothing to backpropagate
        out.square().mean().backward()


CALLS: dict[str, Callable[[nn.Module, torch.Tensor], Any]] = {
    "tree": lambda m, x: torchscope.tree(m),
    "param_stats": lambda m, x: torchscope.param_stats(m),
    "grad_report": lambda m, x: torchscope.grad_report(m, input_data=x),
    "check_step_restore": lambda m, x: check_step(m, lambda: backward(m(x)), restore=True),
    "output_shape": lambda m, x: assert_output_shape(m, x, (x.shape[0], None)),
    "batch_independent": lambda m, x: assert_batch_independent(m, x),
    "no_unused_params": lambda m, x: assert_no_unused_params(m, lambda: m(x).square().mean()),
    "loss_at_init": lambda m, x: assert_loss_at_init(m, x, torch.zeros(x.shape[0], dtype=torch.long), 2),
    "overfits_one_batch": lambda m, x: assert_overfits_one_batch(
        m, (x, torch.zeros(x.shape[0], dtype=torch.long)), steps=2
    ),
    "param_count": lambda m, x: assert_param_count(m, total=1),
    "eval_mode": lambda m, x: assert_eval_mode(m),
    "train_mode": lambda m, x: assert_train_mode(m),
    "grads_finite": lambda m, x: assert_grads_finite(m),
}


@settings(PROPERTY, max_examples=120)
@given(frozen_setups(), st.sampled_from(sorted(CALLS)), st.booleans(), st.booleans())
def test_every_call_leaves_the_model_unchanged(setup: Any, call: str, train: bool, with_grads: bool) -> None:
    model, x, _ = setup
    model.train(train)
    loss = model(x).square().mean()
    if with_grads and loss.requires_grad:
        loss.backward()
    before = capture_state(model)
    try:
        CALLS[call](model, x)
    except (AssertionError, TorchscopeError):
        pass  # a failing check must leave the model untouched too
    assert capture_state(model).differences(before) == []


@settings(PROPERTY, max_examples=15)
@given(frozen_setups(), st.booleans())
def test_summary_leaves_the_model_unchanged(setup: Any, train: bool) -> None:
    # One property of its own: a summary runs the forward pass twice (both modes) and counts MACs.
    model, x, _ = setup
    model.train(train)
    before = capture_state(model)
    torchscope.summary(model, input_data=x)
    assert capture_state(model).differences(before) == []
