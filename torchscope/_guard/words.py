"""What the guard says besides the violations: the failure message, the caveats that limit a
verdict, and why the trainable check is still pending. Pure, no torch."""

from __future__ import annotations

from collections.abc import Sequence

from torchscope._checkparts.report import StepCheck

__all__ = ["EXPECT_CHECKS", "failure_message", "guard_caveats", "pending_reason"]

#: With ``expect_updates=True``, every trainable param must have moved by this check: LoRA's
#: ``lora_A`` gets its first nonzero grad on the second step (``lora_B`` starts at zero), so one
#: check alone would call it a bug.
EXPECT_CHECKS = 3


def failure_message(report: StepCheck) -> str:
    """The message of :class:`~torchscope.errors.FreezeCheckError`: one headline, then the table."""
    n = len(report.violations)
    return (
        f"torchscope guard: {n} freeze violation(s) by optimizer step {report.guard_step} "
        f"(compared with the model when the guard started)\n{report}"
    )


def guard_caveats(skipped: Sequence[str], every: int, has_optimizer: bool, read: str | None = None) -> tuple[str, ...]:
    """The sentences that limit a guard's verdict (``read``: how the check read the frozen values,
    where it did not read every byte)."""
    out = [] if read is None else [read]
    if skipped:
        few = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        out.append(
            f"{len(skipped)} tensor(s) under check hold no values here (meta: offloaded, or lazy) and were checked "
            f"by identity, shape and flags only, not by value: {few}"
        )
    if has_optimizer and every > 1:
        out.append(f"checked every {every} optimizer steps: a step number is the check that first saw the change")
    return tuple(out)


def pending_reason(pending: int, checks: int, final: bool, steps: int) -> str:
    """Why ``trainable_not_updated`` is not decided yet."""
    if final and steps < 2:
        return (
            f"{pending} trainable param(s) had not moved after {steps} optimizer step(s); one step is too few to "
            "tell (LoRA's lora_A first moves on step 2)"
        )
    return f"{pending} trainable param(s) have not moved yet; decided by check {EXPECT_CHECKS} (now {checks})"
