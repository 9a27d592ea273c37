"""The freeze guard over ``accelerator.prepare(model, optimizer)``: the example of docs/guard.md."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from zoo import SmallCNN

import torchscope
from torchscope.errors import FreezeCheckError

accelerate = pytest.importorskip("accelerate", reason="Accelerate not installed: pip install 'torchscope[hf]'")


@pytest.fixture
def accelerator() -> Iterator[object]:
    acc = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    yield acc
    accelerate.state.AcceleratorState._reset_state(reset_partial_state=True)


def prepared(accelerator: object) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = SmallCNN()
    torchscope.freeze(model, "backbone.*")
    opt = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    return accelerator.prepare(model, opt)  # type: ignore[attr-defined,no-any-return]


def loop(accelerator: object, model: torch.nn.Module, opt: torch.optim.Optimizer, batches: int) -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(batches):
        with accelerator.accumulate(model):  # type: ignore[attr-defined]
            x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g)
            accelerator.backward(F.cross_entropy(model(x), y))  # type: ignore[attr-defined]
            opt.step()  # a no-op on the micro-batches that only accumulate
            opt.zero_grad()


def test_prepared_model_and_optimizer_are_unwrapped_and_updates_counted(accelerator: object) -> None:
    model, opt = prepared(accelerator)
    assert type(opt).__name__ == "AcceleratedOptimizer"
    model.train()
    model.backbone.eval()  # the fix for the frozen BatchNorm layers
    with torchscope.guard(model, optimizer=opt) as g:
        loop(accelerator, model, opt, 6)
    assert g.steps == 3  # 6 micro-batches, accumulated two by two
    assert [r.guard_step for r in g.reports] == [1, 2, 3, 3] and all(r.ok for r in g.reports)
    inner = opt.optimizer  # type: ignore[attr-defined]
    assert not inner._optimizer_step_pre_hooks and not inner._optimizer_step_post_hooks


def test_a_drifting_batchnorm_is_caught_through_accelerate(accelerator: object) -> None:
    model, opt = prepared(accelerator)
    model.train()
    with pytest.raises(FreezeCheckError, match="by optimizer step 1") as info:
        with torchscope.guard(model, optimizer=opt):
            loop(accelerator, model, opt, 4)
    assert all("ran in train mode" in v.cause for v in info.value.report.by_kind("frozen_buffer_changed"))
