"""audit_optimizer: the optimizer's tensors matched to the model by identity, never by value."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from zoo import SmallCNN

from torchscope import audit_optimizer, freeze_backbone, replace_head
from torchscope.errors import TorchscopeError


def _audit(model: nn.Module, opt: torch.optim.Optimizer) -> list[tuple[str, str]]:
    return [(v.to_dict()["kind"], v.to_dict()["name"]) for v in audit_optimizer(model, opt)]


def test_optimizer_over_trainable_params_is_clean() -> None:
    model = SmallCNN()
    freeze_backbone(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    assert audit_optimizer(model, opt) == ()


def test_frozen_params_in_a_group_with_weight_decay() -> None:
    model = SmallCNN()
    freeze_backbone(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)  # AdamW's default weight_decay is 0.01
    found = audit_optimizer(model, opt)
    assert [v.name for v in found] == [n for n, _ in model.backbone.named_parameters(prefix="backbone")]
    assert all(v.kind == "optimizer_frozen_param" and v.max_abs_change is None for v in found)
    assert "in param group 0 with weight_decay=0.01" in found[0].cause
    # a frozen param without weight decay and without state cannot move: not reported
    assert audit_optimizer(model, torch.optim.SGD(model.parameters(), lr=0.1)) == ()


def test_frozen_params_with_momentum_state_from_before_the_freeze() -> None:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    F.cross_entropy(model(torch.randn(2, 3, 8, 8)), torch.tensor([0, 1])).backward()
    opt.step()
    freeze_backbone(model)
    found = audit_optimizer(model, opt)
    assert {v.kind for v in found} == {"optimizer_frozen_param"}
    assert "has momentum state from before the freeze" in found[0].cause


def test_missing_and_stale_after_replace_head() -> None:
    model = SmallCNN()
    freeze_backbone(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    replace_head(model, 5)
    assert _audit(model, opt) == [
        ("optimizer_stale_param", "param_groups[0][0] (shape [3, 8])"),
        ("optimizer_stale_param", "param_groups[0][1] (shape [3])"),
        ("optimizer_missing_param", "fc.weight"),
        ("optimizer_missing_param", "fc.bias"),
    ]
    found = audit_optimizer(model, opt)
    assert "no longer in the model" in found[0].cause and "build the optimizer after" in found[0].cause
    assert "in no optimizer param group" in found[2].cause


def test_duplicates_across_groups() -> None:
    model = nn.Linear(3, 3)
    opt = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1)
    opt.param_groups[1]["params"].append(model.weight)  # edited by hand, bypassing add_param_group's check
    ((kind, name),) = _audit(model, opt)
    assert (kind, name) == ("optimizer_duplicate_param", "weight")
    assert "param_groups[0][0] and param_groups[1][1]" in audit_optimizer(model, opt)[0].cause


def test_identity_not_value() -> None:
    model = nn.Linear(3, 3)
    twin = nn.Parameter(model.weight.detach().clone())  # equal values, another tensor
    opt = torch.optim.SGD([twin, model.bias], lr=0.1)
    assert _audit(model, opt) == [
        ("optimizer_stale_param", "param_groups[0][0] (shape [3, 3])"),
        ("optimizer_missing_param", "weight"),
    ]


def test_wrapped_models_use_the_inner_names() -> None:
    model = SmallCNN()
    opt = torch.optim.SGD([model.fc.weight], lr=0.1)
    wrapped = torch.compile(model, backend="eager")
    names = [n for _, n in _audit(wrapped, opt)]
    assert names[0] == "backbone.0.weight" and "fc.bias" in names and not any("_orig_mod" in n for n in names)


def test_bad_arguments() -> None:
    with pytest.raises(TorchscopeError, match=r"optimizer must be a torch\.optim\.Optimizer, not list"):
        audit_optimizer(nn.Linear(2, 2), [])  # type: ignore[arg-type]
    with pytest.raises(TorchscopeError, match=r"model must be an nn\.Module, not str"):
        audit_optimizer("resnet18", torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1))  # type: ignore[arg-type]
