"""What every framework adapter of the guard shares: its settings, checked once, starting the guard
on the framework's start event (a leftover guard of an earlier run that raised is removed first),
and its reports. The adapters themselves only map events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import nn

from torchscope._checkparts.report import StepCheck
from torchscope._guard.core import Content, FreezeGuard, check_settings
from torchscope.errors import TorchscopeError

__all__ = ["GuardSettings"]


class GuardSettings:
    """The guard's settings as an adapter takes them, and the guard of the current run."""

    def __init__(
        self,
        every_n_steps: int = 1,
        *,
        frozen: str | Sequence[str] | None = None,
        mode: Literal["exact", "fingerprint"] = "fingerprint",
        expect_updates: bool = False,
        fail_fast: bool = True,
        content: Content = "sweep",
        sweep_checks: int | None = None,
    ) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise TorchscopeError(f"every_n_steps={every_n_steps!r} must be an integer >= 1")
        if mode not in ("exact", "fingerprint"):
            raise TorchscopeError(f"mode={mode!r} is not 'exact' or 'fingerprint'")
        check_settings(content, sweep_checks)
        self.content: Content = content
        self.sweep_checks = sweep_checks
        self.every_n_steps = every_n_steps
        self.frozen = frozen
        self.mode: Literal["exact", "fingerprint"] = mode
        self.expect_updates = expect_updates
        self.fail_fast = fail_fast
        self.guard: FreezeGuard | None = None

    def start_guard(self, model: nn.Module, optimizer: Any) -> FreezeGuard:
        """A guard over this run; its checks run when the adapter calls ``check_due()``."""
        if self.guard is not None:
            self.guard.remove()
        self.guard = FreezeGuard(
            model, frozen=self.frozen, optimizer=optimizer, every=self.every_n_steps, mode=self.mode,
            expect_updates=self.expect_updates, fail_fast=self.fail_fast, defer_checks=True, content=self.content,
            sweep_checks=self.sweep_checks,
        )  # fmt: skip
        return self.guard

    def check_due(self) -> bool:
        """Run the check the last real optimizer step made due; True when training should stop
        (a violation with ``fail_fast=False``: with ``fail_fast=True`` it raised)."""
        report = None if self.guard is None else self.guard.check_due()
        return report is not None and not report.ok

    def close_guard(self, *, check: bool = True) -> None:
        if self.guard is not None:
            if check:
                self.guard.close()
            else:
                self.guard.remove()

    @property
    def reports(self) -> list[StepCheck]:
        """Every check's report so far."""
        return [] if self.guard is None else self.guard.reports

    @property
    def report(self) -> StepCheck | None:
        """The last check's report (None before the first check)."""
        return self.reports[-1] if self.reports else None
