"""What the optimizer saw when ``optimizer.step()`` ran, which group holds each param, and putting an
optimizer's state back after a check with ``restore=True``."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from torchscope._checkparts.numerics import inf_norm
from torchscope._checkparts.plan import local_tensor

__all__ = ["MOMENTUM_KEYS", "OptimizerProbe", "StepSight", "group_of", "has_momentum", "restoring_optimizer"]

# State that keeps moving a param whose grad is zero: SGD momentum, Adam/AdamW first moment.
MOMENTUM_KEYS = ("momentum_buffer", "exp_avg")


def has_momentum(state: dict[str, Any]) -> bool:
    """Whether an optimizer's per-param state holds momentum-like state (which moves a zero-grad param)."""
    return any(k in MOMENTUM_KEYS and isinstance(v, torch.Tensor) for k, v in state.items())


@dataclass
class StepSight:
    """Per watched param, at one ``optimizer.step()``: inf-norm of the grad and of momentum-like state."""

    grad: list[torch.Tensor | None]  # None when no grad
    momentum: list[torch.Tensor | None]  # None when no state


class OptimizerProbe:
    """A step pre-hook on the optimizer that records, per watched param, grad and state at step time."""

    def __init__(self, optimizer: torch.optim.Optimizer, watched: list[torch.Tensor]) -> None:
        self.optimizer = optimizer
        self.watched = watched
        self.sights: list[StepSight] = []
        self.handle = optimizer.register_step_pre_hook(self._hook)

    def _hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        grads: list[torch.Tensor | None] = []
        moms: list[torch.Tensor | None] = []
        with torch.no_grad():
            for p in self.watched:
                g = p.grad
                grads.append(None if g is None else inf_norm(local_tensor(g)))
                state = optimizer.state.get(p, {})
                mom = [v for k, v in state.items() if k in MOMENTUM_KEYS and isinstance(v, torch.Tensor)]
                moms.append(inf_norm(local_tensor(mom[0])) if mom else None)
        self.sights.append(StepSight(grads, moms))

    def remove(self) -> None:
        self.handle.remove()


def group_of(optimizer: torch.optim.Optimizer) -> dict[int, int]:
    """id(param) -> index of the first param group that holds it."""
    out: dict[int, int] = {}
    for i, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            out.setdefault(id(p), i)
    return out


@contextmanager
def restoring_optimizer(optimizer: torch.optim.Optimizer | None) -> Iterator[None]:
    """Put the optimizer's state and param groups back as they were on exit, in place."""
    if optimizer is None:
        yield
        return
    state = {
        p: {k: (v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in s.items()}
        for p, s in optimizer.state.items()
    }
    groups = [
        {k: (list(v) if k == "params" else copy.deepcopy(v)) for k, v in g.items()} for g in optimizer.param_groups
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for p in list(optimizer.state):
                if p not in state:
                    del optimizer.state[p]
            for p, saved in state.items():
                live = optimizer.state[p]
                for k in [k for k in live if k not in saved]:
                    del live[k]
                for k, v in saved.items():
                    cur = live.get(k)
                    if isinstance(v, torch.Tensor) and isinstance(cur, torch.Tensor) and cur.shape == v.shape:
                        cur.copy_(v)
                    else:
                        live[k] = v
            del optimizer.param_groups[len(groups) :]
            for g, saved_g in zip(optimizer.param_groups, groups, strict=False):
                g.clear()
                g.update(saved_g)
