"""The guard's view of ``check-freeze``'s reference run: over several reference steps, the step at
which each change first appeared, as a guard watching the same run sees it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from torchscope._checkparts.report import StepCheck
from torchscope._guard.core import FreezeGuard
from torchscope.errors import TorchscopeError

__all__ = ["GuardView"]


class GuardView:
    """A :class:`~torchscope._check.reference.StepObserver`: a ``fail_fast=False`` guard over the
    reference copy while it trains (more than one step: with one, every change is the first step's)."""

    def __init__(self) -> None:
        self.guard: FreezeGuard | None = None

    def start(self, net: nn.Module, opt: torch.optim.Optimizer | None, frozen: str | Sequence[str] | None,
              steps: int) -> None:  # fmt: skip
        if steps < 2 or opt is None:
            return
        try:
            self.guard = FreezeGuard(net, frozen=frozen, optimizer=opt, fail_fast=False)
        except TorchscopeError:  # nothing frozen: check_step says so itself
            self.guard = None

    def stop(self) -> None:
        if self.guard is not None:
            self.guard.remove()

    def finish(self, report: StepCheck) -> StepCheck:
        """``report`` with each violation's first step, and the optimizer steps the guard counted."""
        if self.guard is None:
            return report
        seen: dict[tuple[str, str], int | None] = {}
        for r in self.guard.reports:
            for v in r.violations:
                seen.setdefault((v.kind, v.name), v.step)
        violations = tuple(dataclasses.replace(v, step=seen.get((v.kind, v.name))) for v in report.violations)
        return dataclasses.replace(report, violations=violations, guard_step=self.guard.steps)
