"""From a comparison to violations: which tensors under check moved that must not, and which that
must train did not, each with its cause. Shared by ``check_step`` (one step) and the freeze guard
(every check of a run, against the state it started from), so both say the same thing of the same
change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torchscope._check.causes import Causes
from torchscope._check.snapshot import SnapshotDiff
from torchscope._checkparts.grouping import group_violations
from torchscope._checkparts.plan import CheckedTensor, Plan
from torchscope._checkparts.report import StepCheck, Violation
from torchscope._fingerprint import ALGORITHM

__all__ = ["build_check", "moved_violations", "not_checked", "unmoved_violations"]


def build_check(
    plan: Plan, violations: Sequence[Violation], *, mode: str, checks: Sequence[str],
    not_checked: Sequence[tuple[str, str]], bytes_checked: int, snapshot_bytes: int, **extra: Any,
) -> StepCheck:
    """The one :class:`~torchscope.StepCheck` of a plan and its violations, ``check_step``'s and the
    guard's alike: the counts from the plan, the violations grouped by cause (the trainable names
    kept apart), the fingerprint algorithm of fingerprint mode; ``extra`` the fields only one sets."""
    return StepCheck(
        ok=not violations,
        violations=tuple(violations),
        groups=group_violations(list(violations), keep=[n for t in plan.trainable for n in t.names]),
        mode=mode,
        checks=tuple(checks),
        params=len(plan.params),
        frozen_params=len(plan.frozen),
        trainable_params=len(plan.trainable),
        buffers=len(plan.buffers),
        frozen_buffers=len(plan.frozen_buffers),
        bytes_checked=bytes_checked,
        snapshot_bytes=snapshot_bytes,
        not_checked=tuple(not_checked),
        fingerprint=ALGORITHM if mode == "fingerprint" else None,
        **extra,
    )


def moved_violations(
    plan: Plan, diff: SnapshotDiff, causes: Causes, checked: Sequence[CheckedTensor], *, with_shape: bool = False
) -> list[Violation]:
    """A ``frozen_param_changed`` or ``frozen_buffer_changed`` violation for each of ``checked``
    (frozen params and buffers) edited in place; replaced or removed ones are said by name
    (:func:`~torchscope._check.byname.by_name_violations`)."""
    frozen_pos = {id(t): j for j, t in enumerate(plan.frozen)}
    out: list[Violation] = []
    for t in checked:
        c = diff.get(t.name)
        if c is None or not c.moved:
            continue
        shape = c.shape_text if with_shape else None
        j = frozen_pos.get(id(t))
        if j is not None:
            out.append(Violation("frozen_param_changed", t.name, c.max_abs_change, causes.frozen_param_cause(j),
                                 causes.frozen_param_fix(j), shape=shape))  # fmt: skip
        else:
            out.append(Violation("frozen_buffer_changed", t.name, c.max_abs_change, causes.buffer_cause(t),
                                 shape=shape))  # fmt: skip
    return out


def unmoved_violations(
    plan: Plan, diff: SnapshotDiff, causes: Causes, trainable: Sequence[CheckedTensor], *, exact: bool,
    with_shape: bool = False,
) -> tuple[list[Violation], int]:
    """A ``trainable_not_updated`` violation for each of ``trainable`` that is the same tensor with
    the same values, and how many of them got no grad at all (an unused branch: a caveat)."""
    nfrozen = len(plan.frozen)
    tr_pos = {id(t.tensor): k for k, t in enumerate(plan.trainable)}
    out: list[Violation] = []
    no_grad = 0
    for t in trainable:
        c = diff.get(t.name)
        if c is None or c.status != "same" or c.changed is not False:
            continue
        k = nfrozen + tr_pos[id(t.tensor)]
        no_grad += causes.got_no_grad(k)
        out.append(Violation("trainable_not_updated", t.name, 0.0 if exact else None, causes.trainable_cause(k),
                             shape=c.shape_text if with_shape else None))  # fmt: skip
    return out, no_grad


def not_checked(
    plan: Plan, trainable: Sequence[CheckedTensor], checks: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    """The checks that had nothing to look at, each with the reason (shown as not checked, never as held)."""
    empty = {
        "frozen_param_changed": (not plan.frozen, "no frozen param"),
        "frozen_buffer_changed": (not plan.frozen_buffers, "no frozen buffer"),
        "trainable_not_updated": (not trainable, "no trainable param to check"),
        "requires_grad_changed": (not plan.params, "no param"),
        "nonfinite": (not plan.params and not plan.buffers, "no param or buffer"),
        "optimizer_missing_param": (not plan.trainable, "no trainable param"),
        "optimizer_frozen_param": (not plan.frozen, "no frozen param"),
        "tied_conflict": (not plan.frozen, "no frozen param"),
    }
    return tuple((k, empty[k][1]) for k in checks if k in empty and empty[k][0])
