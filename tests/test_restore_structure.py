"""A block that replaces a model's tensors or modules is undone: the names are bound to the originals."""

from __future__ import annotations

import torch
from torch import nn
from zoo import SmallCNN

import torchscope


def _bindings(model: nn.Module) -> dict[str, int]:
    named = [*model.named_parameters(), *model.named_buffers(), *model.named_modules()]
    return {name: id(obj) for name, obj in named}


def test_check_step_with_restore_undoes_a_step_that_replaces_frozen_tensors_and_modules() -> None:
    torch.manual_seed(0)
    model = SmallCNN()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = _bindings(model)
    values = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,))
    conv = next(n for n, m in model.backbone.named_children() if isinstance(m, nn.Conv2d))

    def step() -> None:  # the shapes of resize_token_embeddings and of a head replaced after a freeze
        first = getattr(model.backbone, conv)
        first.weight = nn.Parameter(first.weight.detach() * 2)
        bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
        bn.running_mean = torch.ones_like(bn.running_mean)
        model.fc = nn.Linear(model.fc.in_features, model.fc.out_features)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    report = torchscope.check_step(model, step, optimizer=opt, restore=True)
    assert not report.ok and {"tensor_replaced", "tensor_added"} & {v.kind for v in report.violations}
    assert _bindings(model) == before
    assert all(torch.equal(values[k], v) for k, v in model.state_dict().items())


def test_summary_of_a_model_whose_forward_rebinds_a_buffer_leaves_the_original_bound() -> None:
    class Rebinds(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.register_buffer("count", torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.count = self.count + 1  # a new tensor each call, not an in-place add
            return self.fc(x)

    model = Rebinds()
    before = _bindings(model)
    torchscope.summary(model, input_size=(2, 4), verbose=0)
    assert _bindings(model) == before and float(model.count) == 0.0
