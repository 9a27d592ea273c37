"""Optimizer audit: which tensors the optimizer holds, matched to the model by identity, never value.

Four findings, each a :class:`~torchscope.Violation`:

- ``optimizer_missing_param``: a trainable param is in no param group, so it never trains;
- ``optimizer_frozen_param``: a frozen param sits in a group with ``weight_decay > 0`` or has
  momentum state, so a zero (not None) grad is enough to move it;
- ``optimizer_stale_param``: the optimizer holds a tensor that is no longer in the model (it was
  built before ``replace_head``), named ``param_groups[i][j]``;
- ``optimizer_duplicate_param``: one tensor in more than one place of the param groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from torchscope._checkparts.plan import CheckedTensor, collect_tensors, unwrap
from torchscope._checkparts.probe import has_momentum
from torchscope._checkparts.report import Violation
from torchscope._format import format_shape
from torchscope.errors import TorchscopeError


def audit(params: Sequence[CheckedTensor], optimizer: torch.optim.Optimizer, frozen_ids: set[int]) -> list[Violation]:
    """Audit ``optimizer`` against the model's unique params; ``frozen_ids`` are ids expected frozen."""
    by_id = {id(t.tensor): t for t in params}
    seen: dict[int, str] = {}
    out: list[Violation] = []
    for i, group in enumerate(optimizer.param_groups):
        for j, p in enumerate(group["params"]):
            where = f"param_groups[{i}][{j}]"
            t = by_id.get(id(p))
            name = t.name if t is not None else f"{where} (shape {format_shape(p.shape)})"
            if id(p) in seen:
                out.append(
                    Violation(
                        "optimizer_duplicate_param",
                        name,
                        None,
                        f"the same tensor is at {seen[id(p)]} and {where}, so it is updated twice per step "
                        "with two sets of hyper-parameters; keep it in one group only",
                    )
                )
                continue
            seen[id(p)] = where
            if t is None:
                out.append(
                    Violation(
                        "optimizer_stale_param",
                        name,
                        None,
                        f"the optimizer holds a {format_shape(p.shape)} tensor at {where} that is no longer in the model "
                        "(built before replace_head or a module swap?), so the new module is not trained; "
                        "build the optimizer after changing the model",
                    )
                )
                continue
            if id(p) in frozen_ids:
                reasons = []
                wd = group.get("weight_decay", 0) or 0
                if wd:
                    reasons.append(f"is in param group {i} with weight_decay={wd}")
                if has_momentum(optimizer.state.get(p, {})):
                    reasons.append("has momentum state from before the freeze")
                if reasons:
                    out.append(
                        Violation(
                            "optimizer_frozen_param",
                            name,
                            None,
                            f"it is frozen but {' and '.join(reasons)}, so a zero grad "
                            "(zero_grad(set_to_none=False)) is enough to move it; build the optimizer from "
                            "[p for p in model.parameters() if p.requires_grad] after freezing",
                        )
                    )
    for t in params:
        if id(t.tensor) not in seen and id(t.tensor) not in frozen_ids and t.tensor.requires_grad:
            out.append(
                Violation(
                    "optimizer_missing_param",
                    t.name,
                    None,
                    "it requires grad but is in no optimizer param group, so it never trains; build the "
                    "optimizer after replace_head/unfreeze, or optimizer.add_param_group({'params': [p]})",
                )
            )
    return out


def audit_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Violation, ...]:
    """Check which tensors ``optimizer`` holds against ``model``, by identity; frozen = requires_grad False.

    Args:
        model: The model whose parameters the optimizer should hold.
        optimizer: The optimizer to audit.

    Returns:
        One ``Violation`` per problem found (a trainable param the optimizer lacks, a frozen one it
        updates, a tensor not in the model, a duplicate); empty when the optimizer is right.

    Raises:
        TorchscopeError: ``model`` is not an ``nn.Module`` or ``optimizer`` not a ``torch.optim.Optimizer``.

    >>> import torch
    >>> model = torch.nn.Linear(2, 2)
    >>> opt = torch.optim.SGD([model.weight], lr=0.1)
    >>> [(v.kind, v.name) for v in audit_optimizer(model, opt)]
    [('optimizer_missing_param', 'bias')]
    """
    if not isinstance(model, nn.Module):
        raise TorchscopeError(f"model must be an nn.Module, not {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TorchscopeError(f"optimizer must be a torch.optim.Optimizer, not {type(optimizer).__name__}")
    inner, _ = unwrap(model)
    params, _ = collect_tensors(inner)
    frozen_ids = {id(t.tensor) for t in params if not t.tensor.requires_grad}
    return tuple(audit(params, optimizer, frozen_ids))
