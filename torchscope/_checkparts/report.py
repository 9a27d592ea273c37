"""The result types of the step check: :class:`Violation` and :class:`StepCheck`. Plain data, no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchscope._checkparts.config import ReferenceStep
from torchscope._result import Record, Result, json_float

__all__ = ["BY_NAME_KINDS", "KINDS", "NOTHING_FROZEN", "OPTIMIZER_KINDS", "STATUSES", "StepCheck", "StepReport", "Violation", "ViolationGroup",
           "format_change", "json_float", "unused_caveat"]  # fmt: skip

KINDS: tuple[str, ...] = (
    "frozen_param_changed",
    "frozen_buffer_changed",
    "trainable_not_updated",
    "nonfinite",
    "tensor_replaced",
    "tensor_removed",
    "tensor_added",
    "requires_grad_changed",
    "optimizer_missing_param",
    "optimizer_frozen_param",
    "optimizer_stale_param",
    "optimizer_duplicate_param",
    "tied_conflict",
)
OPTIMIZER_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k.startswith("optimizer_"))
#: The kinds the by-name comparison finds (torchscope._check.byname); here, below the torch code,
#: so that the renderers can name them without importing torch.
BY_NAME_KINDS: tuple[str, ...] = ("tensor_replaced", "tensor_removed", "tensor_added", "requires_grad_changed")

#: Where a check stands: it held (looked at something, found nothing wrong), it was violated, or it
#: had nothing to look at (not checked: never shown, nor counted, as held).
STATUSES: tuple[str, ...] = ("held", "violated", "not_checked")


#: The caveat of a check where nothing was expected frozen.
NOTHING_FROZEN = "nothing was frozen, so no freeze invariant was checked (only that trainable params updated)"


def unused_caveat(count: int) -> str:
    """The caveat of a verdict where ``count`` trainable params got no grad from the one input used.

    >>> unused_caveat(2)
    '2 trainable params got no grad from this input; a branch that depends on the input may use them on another, so this verdict holds for this input only'
    """
    what = "1 trainable param" if count == 1 else f"{count} trainable params"
    return (
        f"{what} got no grad from this input; a branch that depends on the input may use them on "
        "another, so this verdict holds for this input only"
    )


def format_change(x: float | None) -> str:
    """A max |change| for a table cell: ``-`` when no value is known."""
    return "-" if x is None else f"{x:.3g}"


@dataclass(frozen=True)
class Violation(Record):
    """One broken invariant: what (``kind``), where (qualified ``name``), how much, and why.

    ``max_abs_change`` is the largest absolute change of an element (exact mode), or None where no
    value is known (fingerprint mode, optimizer audit, tied names). ``fix`` is a call template with
    a ``{patterns}`` field, where one call fixes every violation of the same cause (see
    :func:`~torchscope._checkparts.grouping.group_violations`). ``shape`` is the tensor's shape as text
    (``[128, 32] -> [130, 32]`` where it changed), where known; ``step`` is the optimizer step at
    which a freeze guard first saw the violation (None for ``check_step``). ``since_step`` is set
    where the guard found a change later than the step it happened at (its rotating sweep reads an
    untouched tensor's bytes over several checks): the change came after step ``since_step``, the
    last at which those bytes were read unchanged, and by step ``step``. ``found_by`` says how the
    guard read the tensor when it found the change: ``full`` (every byte, every check), ``version``
    (its version counter moved, so it was read at once), ``storage`` (its data moved to other
    memory, ``p.data = ...``), ``sample`` (a few elements read every check), ``sweep`` (the rotating
    read of every byte) or ``final`` (the full read of the last, or an explicit, check).
    """

    kind: str
    name: str
    max_abs_change: float | None
    cause: str
    fix: str | None = None
    shape: str | None = None
    step: int | None = None
    since_step: int | None = None
    found_by: str | None = None


@dataclass(frozen=True)
class ViolationGroup(Record):
    """Violations of one kind with one cause: ``names`` in report order, and ``fix`` (one call for
    all of them) where the violations carry a fix template. Made by ``group_violations``."""

    kind: str
    cause: str
    names: tuple[str, ...]
    max_abs_change: float | None
    fix: str | None = None

    DERIVED = ("count",)

    @property
    def count(self) -> int:
        return len(self.names)

    def few(self, limit: int = 3) -> str:
        """The first ``limit`` names, then how many more: ``'a, b, c and 17 more'``."""
        shown = ", ".join(self.names[:limit])
        rest = len(self.names) - limit
        return shown + (f" and {rest} more" if rest > 0 else "")


@dataclass(frozen=True, repr=False)
class StepCheck(Result):
    """What :func:`check_step` checked and every violation it found. Plain data.

    ``checks`` lists the violation kinds that were checked (the optimizer kinds only when an
    optimizer was given); ``not_checked`` pairs those of them that had nothing to look at (no
    trainable param, no frozen buffer) with the reason, and :meth:`status` says of each kind
    whether it held, was violated or was not checked. ``ok`` means no violation: with checks not
    checked it is no proof of those. ``str(report)`` is a plain-text table. ``groups`` are the violations
    grouped by cause, each with the one call that fixes it where there is one. ``caveats`` are
    sentences that limit the verdict (nothing was frozen; params this input did not use, so the
    verdict holds for this input only). ``reference`` is the step that ran, for ``check_freeze``.
    ``guard_step`` is set on a freeze guard's report: the real optimizer steps it had counted when
    it compared the model against the state it started from.
    """

    ok: bool
    violations: tuple[Violation, ...]
    mode: str
    checks: tuple[str, ...]
    params: int
    frozen_params: int
    trainable_params: int
    buffers: int
    frozen_buffers: int
    bytes_checked: int
    snapshot_bytes: int
    optimizer_steps: int | None = None
    world_size: int = 1
    wrappers: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()
    groups: tuple[ViolationGroup, ...] = ()
    reference: ReferenceStep | None = None
    not_checked: tuple[tuple[str, str], ...] = ()
    # the fingerprint algorithm of mode "fingerprint" (torchscope._fingerprint.ALGORITHM), else None
    fingerprint: str | None = None
    guard_step: int | None = None  # the optimizer step a freeze guard checked at (None for check_step)

    SCHEMA = "torchscope.check/1"
    DERIVED = ("nothing_frozen", "statuses")
    KEYS = (("statuses", "status"),)
    MAPPINGS = ("not_checked",)

    def status(self, kind: str) -> str:
        """``held``, ``violated`` or ``not_checked`` (also for a kind this check did not run)."""
        if any(v.kind == kind for v in self.violations):
            return "violated"
        if kind not in self.checks or any(k == kind for k, _ in self.not_checked):
            return "not_checked"
        return "held"

    @property
    def held(self) -> tuple[str, ...]:
        """The checks that looked at something and found nothing wrong."""
        return tuple(k for k in self.checks if self.status(k) == "held")

    @property
    def nothing_frozen(self) -> bool:
        """No param and no buffer was expected frozen: no freeze invariant was checked."""
        return self.frozen_params == 0 and self.frozen_buffers == 0

    @property
    def statuses(self) -> dict[str, str]:
        """Each check's :meth:`status`, in check order (``to_dict()["status"]``)."""
        return {k: self.status(k) for k in self.checks}

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per violation: what :meth:`to_dataframe` holds."""
        return [v.to_dict() for v in self.violations]

    def by_kind(self, kind: str) -> tuple[Violation, ...]:
        """The violations of one kind, in report order."""
        return tuple(v for v in self.violations if v.kind == kind)


#: The old name of :class:`StepCheck` (``torchscope.StepReport`` warns; it goes in the next release).
StepReport = StepCheck
