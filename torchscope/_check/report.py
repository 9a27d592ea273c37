"""The report types of the step check: :class:`Violation` and :class:`StepReport`. Plain data, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torchscope._check.config import ReferenceStep
from torchscope._format import format_bytes

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

#: Where a check stands: it held (looked at something, found nothing wrong), it was violated, or it
#: had nothing to look at (not checked: never shown, nor counted, as held).
STATUSES: tuple[str, ...] = ("held", "violated", "not_checked")


def json_float(x: float | None) -> float | str | None:
    """A float JSON can hold: ``inf``/``nan`` become the strings ``"inf"``/``"nan"`` (strict JSON has neither).

    >>> json_float(1.5), json_float(float("inf")), json_float(None)
    (1.5, 'inf', None)
    """
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


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


def _extra_columns(violations: tuple[Violation, ...]) -> list[str]:
    """The shape and step columns of the plain-text table (header first), where any row has one."""
    cols: list[list[str]] = [[""] for _ in range(len(violations) + 1)]
    for head, values in (("shape", [v.shape for v in violations]), ("step", [v.step for v in violations])):
        if all(x is None for x in values):
            continue
        texts = [head] + ["-" if x is None else str(x) for x in values]
        width = max(len(t) for t in texts)
        for row, t in zip(cols, texts, strict=True):
            row.append(f"{t:<{width}}")
    return ["  " + "  ".join(r[1:]) if len(r) > 1 else "" for r in cols]


@dataclass(frozen=True)
class Violation:
    """One broken invariant: what (``kind``), where (qualified ``name``), how much, and why.

    ``max_abs_change`` is the largest absolute change of an element (exact mode), or None where no
    value is known (fingerprint mode, optimizer audit, tied names). ``fix`` is a call template with
    a ``{patterns}`` field, where one call fixes every violation of the same cause (see
    :func:`~torchscope._check.grouping.group_violations`). ``shape`` is the tensor's shape as text
    (``[128, 32] -> [130, 32]`` where it changed), where known; ``step`` is the optimizer step at
    which a freeze guard first saw the violation (None for ``check_step``).
    """

    kind: str
    name: str
    max_abs_change: float | None
    cause: str
    fix: str | None = None
    shape: str | None = None
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "shape": self.shape,
            "max_abs_change": json_float(self.max_abs_change),
            "step": self.step,
            "cause": self.cause,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class ViolationGroup:
    """Violations of one kind with one cause: ``names`` in report order, and ``fix`` (one call for
    all of them) where the violations carry a fix template. Made by ``group_violations``."""

    kind: str
    cause: str
    names: tuple[str, ...]
    max_abs_change: float | None
    fix: str | None = None

    @property
    def count(self) -> int:
        return len(self.names)

    def few(self, limit: int = 3) -> str:
        """The first ``limit`` names, then how many more: ``'a, b, c and 17 more'``."""
        shown = ", ".join(self.names[:limit])
        rest = len(self.names) - limit
        return shown + (f" and {rest} more" if rest > 0 else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "names": list(self.names),
            "max_abs_change": json_float(self.max_abs_change),
            "cause": self.cause,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class StepReport:
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
    guard_step: int | None = None

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

    def by_kind(self, kind: str) -> tuple[Violation, ...]:
        """The violations of one kind, in report order."""
        return tuple(v for v in self.violations if v.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mode": self.mode,
            "checks": list(self.checks),
            "params": self.params,
            "frozen_params": self.frozen_params,
            "trainable_params": self.trainable_params,
            "buffers": self.buffers,
            "frozen_buffers": self.frozen_buffers,
            "bytes_checked": self.bytes_checked,
            "snapshot_bytes": self.snapshot_bytes,
            "optimizer_steps": self.optimizer_steps,
            "world_size": self.world_size,
            "wrappers": list(self.wrappers),
            "nothing_frozen": self.nothing_frozen,
            "status": {k: self.status(k) for k in self.checks},
            "not_checked": dict(self.not_checked),
            "guard_step": self.guard_step,
            "caveats": list(self.caveats),
            "reference": None if self.reference is None else self.reference.to_dict(),
            "violations": [v.to_dict() for v in self.violations],
            "groups": [g.to_dict() for g in self.groups],
        }

    def __str__(self) -> str:
        verdict = "OK" if self.ok else f"FAILED, {len(self.violations)} violation(s)"
        if self.ok and self.not_checked:
            verdict += f" ({len(self.not_checked)} of {len(self.checks)} checks had nothing to check)"
        guard = self.guard_step is not None and self.reference is None
        who = f"freeze guard at step {self.guard_step}" if guard else "check_step"
        lines = [
            f"{who} ({self.mode} mode): {verdict}",
            f"checked {self.frozen_params} frozen and {self.trainable_params} trainable of {self.params} params, "
            f"{self.frozen_buffers} frozen of {self.buffers} buffers ({format_bytes(self.bytes_checked)}); "
            f"snapshot {format_bytes(self.snapshot_bytes)}",
        ]
        if self.reference is not None:
            lines.append(f"step: {self.reference.describe()}")
        lines += [f"note: {c}" for c in self.caveats]
        if self.violations:
            rows = [("kind", "name", "max |change|")]
            rows += [(v.kind, v.name, format_change(v.max_abs_change)) for v in self.violations]
            extra = _extra_columns(self.violations)
            w0 = max(len(r[0]) for r in rows)
            w1 = max(len(r[1]) for r in rows)
            w2 = max(len(r[2]) for r in rows)
            rows = [(a, b, f"{c:<{w2}}{x}".rstrip()) for (a, b, c), x in zip(rows, extra, strict=True)]
            lines.append("")
            lines.append(f"{rows[0][0]:<{w0}}  {rows[0][1]:<{w1}}  {rows[0][2]}")
            # A cause shared by a run of rows (60 BatchNorm buffers drifting) is printed once,
            # under the run, so the table stays readable.
            run = 0
            fixes = {(g.kind, g.cause): g for g in self.groups if g.fix}
            for i, (row, v) in enumerate(zip(rows[1:], self.violations, strict=True)):
                lines.append(f"{row[0]:<{w0}}  {row[1]:<{w1}}  {row[2]}")
                run += 1
                nxt = self.violations[i + 1] if i + 1 < len(self.violations) else None
                if nxt is None or nxt.cause != v.cause:
                    label = "cause" if run == 1 else f"cause (all {run} above)"
                    lines.append(f"    {label}: {v.cause}")
                    group = fixes.pop((v.kind, v.cause), None)
                    if group is not None:
                        lines.append(f"    fix (all {group.count} {group.kind}): {group.fix}")
                    run = 0
        if self.not_checked:
            lines.append("")
            lines += [f"not checked: {kind} ({why})" for kind, why in self.not_checked]
        return "\n".join(lines)
