"""Where the guard meets the training loop: the optimizer it hooks (unwrapped from Accelerate's and
similar wrappers), and the step hooks that count real ``optimizer.step()`` calls.

A step that AMP's ``GradScaler`` skipped (inf/NaN grads) never calls the optimizer's ``step()``,
so neither hook fires: it is not counted, and no check runs on it. Gradient accumulation calls
``step()`` once per accumulated batch, so the count is of updates, never of micro-batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from torchscope._checkparts.probe import OptimizerProbe
from torchscope.errors import TorchscopeError

__all__ = ["StepHooks", "inner_optimizer"]


def inner_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The ``torch.optim.Optimizer`` that really steps: Accelerate's ``AcceleratedOptimizer`` (and
    any wrapper that keeps the real one as ``.optimizer``) unwrapped, so the hooks fire only when
    the real step runs."""
    opt = optimizer
    while isinstance(getattr(opt, "optimizer", None), torch.optim.Optimizer):
        opt = opt.optimizer
    if not isinstance(opt, torch.optim.Optimizer):
        raise TorchscopeError(
            f"optimizer must be a torch.optim.Optimizer (or a wrapper holding one as .optimizer), "
            f"not {type(optimizer).__name__}"
        )
    return opt


class StepHooks:
    """A step pre-hook (what each watched param's grad and optimizer state were at the step: the
    causes read them) and a step post-hook that counts the step and calls ``due()`` on every
    ``every``-th. Both handles are kept and removed by :meth:`remove`."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, watched: list[torch.Tensor], every: int, due: Callable[[], None]
    ) -> None:
        self.optimizer = optimizer
        self.every = every
        self.due = due
        self.steps = 0
        self.probe = OptimizerProbe(optimizer, watched)
        self.handle = optimizer.register_step_post_hook(self._after)

    def _after(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self.due()

    def watch(self, watched: list[torch.Tensor]) -> None:
        """Record these params from the next step on (the trainable ones drop out after the first checks)."""
        self.probe.watched = watched

    def take_sights(self) -> list[Any]:
        """What the pre-hook saw since the last call (the steps of one check), and forget it."""
        sights, self.probe.sights = self.probe.sights, []
        return sights

    def remove(self) -> None:
        self.probe.remove()
        self.handle.remove()
