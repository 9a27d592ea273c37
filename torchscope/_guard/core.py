"""``torchscope.guard``: watch the user's own training loop and fail the moment a frozen tensor moves.

At the start the guard records what is frozen (``requires_grad=False`` params and the buffers of
modules whose own params are all frozen, or the ``frozen`` patterns) and takes one by-name
snapshot (:class:`~torchscope._check.snapshot.NamedSnapshot`: a 64-bit fingerprint per tensor, or
one copy of the frozen tensors in ``exact`` mode). Every ``every``-th real ``optimizer.step()``
(or whenever the user calls :meth:`FreezeGuard.check`) it reads the model again by qualified name
and compares it against that start state: slow drift adds up and is caught, a tensor replaced
during the run is caught as surely as one edited in place, and each violation carries the step it
first appeared at. The comparison, the causes and their grouping are ``check_step``'s own
(:mod:`torchscope._check`); this package only decides when to compare, and keeps the reports.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal

import torch
from torch import nn

from torchscope._check.byname import by_name_violations
from torchscope._check.causes import Causes
from torchscope._check.snapshot import Mode, take_snapshot
from torchscope._check.verdict import build_check, moved_violations, not_checked, unmoved_violations
from torchscope._checkparts.numerics import Floats, inf_norm
from torchscope._checkparts.plan import CheckedTensor, local_tensor, make_plan, unwrap
from torchscope._checkparts.report import StepCheck, Violation
from torchscope._guard.hooks import StepHooks, inner_optimizer
from torchscope._guard.sweep import ColdSweep, Finding, sweep_length
from torchscope._guard.words import EXPECT_CHECKS, failure_message, guard_caveats, pending_reason
from torchscope.errors import FreezeCheckError, TorchscopeError

__all__ = ["CONTENTS", "EXPECT_CHECKS", "Content", "FreezeGuard", "check_settings", "guard"]

#: How a check reads the frozen values: ``sweep`` (marks and samples at every check, every byte
#: within ``sweep_checks`` checks: :mod:`torchscope._guard.sweep`) or ``every-step`` (every byte
#: at every check).
Content = Literal["sweep", "every-step"]
CONTENTS: tuple[str, ...] = ("sweep", "every-step")

#: how many of the latest checks' reports a guard keeps (besides each violation's first sight)
KEEP_RECENT = 100

_FROZEN_KINDS = ("frozen_param_changed", "frozen_buffer_changed")
_BY_NAME = ("tensor_replaced", "tensor_removed", "tensor_added", "requires_grad_changed")


class FreezeGuard:
    """A running freeze guard; see :func:`guard`. Use it as a context manager, or call
    :meth:`close` yourself.

    ``reports`` holds the :class:`~torchscope.StepCheck` of the last :data:`KEEP_RECENT` checks and
    of every earlier check that first saw a violation, in check order (with ``fail_fast=False`` the
    run goes on and they are kept here; a run of 100,000 clean steps keeps 100, not 100,000);
    ``checks`` counts every check run; ``steps`` is the number of real
    optimizer steps counted (steps AMP's ``GradScaler`` skipped are not). ``defer_checks=True``
    (for framework adapters) only marks a check due at the optimizer step; the adapter runs it
    from its own event with :meth:`check_due`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        frozen: str | Sequence[str] | None = None,
        optimizer: Any = None,
        every: int = 1,
        mode: Mode = "fingerprint",
        expect_updates: bool = False,
        fail_fast: bool = True,
        defer_checks: bool = False,
        content: Content = "sweep",
        sweep_checks: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TorchscopeError(f"model must be an nn.Module, not {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise TorchscopeError(f"every={every!r} must be an integer >= 1 (check after every N-th optimizer step)")
        if mode not in ("exact", "fingerprint"):
            raise TorchscopeError(f"mode={mode!r} is not 'exact' or 'fingerprint'")
        check_settings(content, sweep_checks)
        self.content: Content = content
        self.sweep_checks = sweep_checks
        self.model, self.wrappers = unwrap(model)
        self.optimizer = None if optimizer is None else inner_optimizer(optimizer)
        self.every = every
        self.mode: Mode = mode
        self.expect_updates = bool(expect_updates)
        self.fail_fast = bool(fail_fast)
        self._recent: deque[tuple[int, StepCheck]] = deque(maxlen=KEEP_RECENT)
        self._firsts: list[tuple[int, StepCheck]] = []  # reports that first saw a violation, kept for good
        self._first_keys: set[tuple[str, str]] = set()
        self._first_seen: dict[tuple[str, str], Violation] = {}
        self._checks = 0
        self._unmoved: list[Violation] | None = None  # the verdict on trainable params, once decided
        self._moved: set[str] = set()
        self._closed = False
        self._defer = defer_checks
        self._due_pending = False
        self._prev_step = 0  # the step of the check before (0: the start)
        self._start(frozen)

    # -- start -----------------------------------------------------------------------------
    def _start(self, frozen: str | Sequence[str] | None) -> None:
        plan = make_plan(self.model, frozen)
        self.plan = plan
        frozen_tensors = plan.frozen + plan.frozen_buffers
        if not frozen_tensors and not self.expect_updates:
            raise TorchscopeError(
                "nothing in the model is frozen when the guard starts, so there is nothing to guard; freeze first "
                "(torchscope.freeze(model, 'backbone.*')) or pass frozen=['backbone.*']"
            )
        self.checked = [t for t in frozen_tensors if local_tensor(t.tensor).numel() > 0]
        self.trainable = [t for t in plan.trainable if local_tensor(t.tensor).numel() > 0]
        self.snap = take_snapshot(
            self.model, frozen=[n for t in frozen_tensors for n in t.names],
            trainable=[n for t in plan.trainable for n in t.names] if self.expect_updates else (), mode=self.mode,
        )  # fmt: skip
        with torch.no_grad():
            self._grad_start = [
                None if t.tensor.grad is None else inf_norm(local_tensor(t.tensor.grad)) for t in plan.frozen
            ]
        self._rg_start = [t.tensor.requires_grad for t in plan.frozen]
        self.sweep = self._cold_sweep()
        self.hooks: StepHooks | None = None
        if self.optimizer is not None:
            self.hooks = StepHooks(self.optimizer, self._watched(), self.every, self._due)

    def _cold_sweep(self) -> ColdSweep | None:
        """The sweep over the frozen params no optimizer holds (none with ``content="every-step"``,
        or where one check's reads already cover them: a sweep of one check is a full read)."""
        if self.content != "sweep":
            return None
        held = set() if self.optimizer is None else {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        cold = []
        for t in self.plan.frozen:
            e = self.snap.entries.get(t.name)
            if e is not None and e.slot is not None and id(t.tensor) not in held and not t.tensor.requires_grad:
                cold.append((e.slot, t.name, t.tensor))
        if sweep_length(sum(t.nbytes for _, _, t in cold), self.sweep_checks) < 2:
            return None
        sweep = ColdSweep(cold, self.sweep_checks)
        return sweep if sweep.cold else None

    def _watched(self) -> list[torch.Tensor]:
        params: list[CheckedTensor] = self.plan.frozen + (self.plan.trainable if self._window_open else [])
        return [t.tensor for t in params]

    @property
    def _window_open(self) -> bool:
        return self.expect_updates and self._unmoved is None

    @property
    def steps(self) -> int:
        """Real optimizer steps counted so far (0 without an optimizer)."""
        return 0 if self.hooks is None else self.hooks.steps

    # -- check -----------------------------------------------------------------------------
    def _due(self) -> None:
        if self._defer:
            self._due_pending = True
        else:
            self._check(full=False)

    def check_due(self) -> StepCheck | None:
        """With ``defer_checks=True`` (the framework adapters): run the check that the last real
        optimizer step made due, if any; a step ``GradScaler`` skipped made none due."""
        if not self._due_pending or self._closed:
            return None
        self._due_pending = False
        return self._check(full=False)

    def check(self) -> StepCheck:
        """Compare the model now against its state when the guard started, reading every frozen
        byte; raise :class:`~torchscope.errors.FreezeCheckError` on a violation (``fail_fast=True``),
        else return the report (also kept in :attr:`reports`)."""
        return self._check(full=True)

    def _check(self, *, full: bool) -> StepCheck:
        if self._closed:
            raise TorchscopeError("this guard is closed; start a new one with torchscope.guard(model, ...)")
        return self._verdict(self._judge(final=False, full=full))

    @property
    def checks(self) -> int:
        """How many checks have run (every one, kept in :attr:`reports` or not)."""
        return self._checks

    @property
    def reports(self) -> list[StepCheck]:
        """The reports of the last :data:`KEEP_RECENT` checks and of every earlier check that
        first saw a violation, in the order they ran."""
        recent = {i for i, _ in self._recent}
        kept = [(i, r) for i, r in self._firsts if i not in recent] + list(self._recent)
        return [r for _, r in sorted(kept, key=lambda item: item[0])]

    def _verdict(self, report: StepCheck) -> StepCheck:
        entry = (self._checks, report)
        if self._recent.maxlen is not None and len(self._recent) == self._recent.maxlen:
            oldest = self._recent[0]
            if self._first_sights(oldest[1]):
                self._firsts.append(oldest)
        self._recent.append(entry)
        if not report.ok and self.fail_fast:
            self.remove()  # the run is over for this guard: nothing of it stays on the optimizer
            raise FreezeCheckError(failure_message(report), report)
        return report

    def _first_sights(self, report: StepCheck) -> bool:
        """Whether ``report``, leaving the recent reports, holds a violation no report kept before
        it holds (its first sight); marks its violations as kept."""
        keys = {(v.kind, v.name) for v in report.violations}
        new = keys - self._first_keys
        self._first_keys |= new
        return bool(new)

    def _judge(self, *, final: bool, full: bool = True) -> StepCheck:
        plan = self.plan
        self._checks += 1
        window = self._window_open
        sights = [] if self.hooks is None else self.hooks.take_sights()
        trainable = plan.trainable if window else []
        floats = Floats()
        sweep = self.sweep
        skip, found = (set(), {}) if sweep is None else sweep.plan(self.steps, self._prev_step, full=full or final)
        with torch.no_grad():
            resolve = self.snap.measure(
                self.model, floats, roles=("frozen", "trainable") if window else ("frozen",), quiet=("frozen", "other"),
                skip=skip,
            )
            grad_start_i = [floats.add(g) for g in self._grad_start]
            grad_now_i = [
                None if t.tensor.grad is None else floats.add(inf_norm(local_tensor(t.tensor.grad)))
                for t in plan.frozen + trainable
            ] + [None] * (len(plan.trainable) - len(trainable))
            sight_i = [([floats.add(g) for g in s.grad], [floats.add(m) for m in s.momentum]) for s in sights]
        floats.sync()  # the one host transfer of this check
        diff = resolve()
        if sweep is not None and found:
            sweep.settle(self.steps, {s: _moved(diff, sweep.name_of(s)) for s in found})
        changes = [diff.get(t.name) for t in plan.frozen]
        rg_now = [bool(c is not None and c.status == "same" and c.requires_grad_after) for c in changes]
        causes = Causes(plan, self.optimizer, None, floats, sight_i, grad_start_i, grad_now_i, self._rg_start, rg_now)

        violations: list[Violation] = list(plan.pre)
        violations += moved_violations(plan, diff, causes, self.checked, with_shape=True)
        violations += [
            dataclasses.replace(v, shape=_shape(diff, v.name)) for v in by_name_violations(diff)
        ]
        pending = 0
        if window:
            self._moved |= {c.name for c in diff.changes if c.role == "trainable" and c.changed}
            unmoved, _ = unmoved_violations(plan, diff, causes, self.trainable, exact=self.mode == "exact",
                                            with_shape=True)  # fmt: skip
            unmoved = [v for v in unmoved if v.name not in self._moved]
            if unmoved and (self._checks >= EXPECT_CHECKS or (final and self.steps >= 2)):
                self._unmoved = unmoved
            elif not unmoved:
                self._unmoved = []
            else:
                pending = len(unmoved)
            if self._unmoved is not None and self.hooks is not None:
                self.hooks.watch(self._watched())
        if self._unmoved:
            violations += self._unmoved
        violations = [self._stamp(v, found) for v in violations]
        self._prev_step = self.steps

        checks = [*_FROZEN_KINDS, *_BY_NAME]
        if self.expect_updates:
            checks.insert(2, "trainable_not_updated")
        if plan.pattern_frozen:
            checks.append("tied_conflict")
        skipped_checks = list(not_checked(plan, self.trainable, checks))
        if pending:
            skipped_checks.append(("trainable_not_updated", pending_reason(pending, self._checks, final, self.steps)))
        frozen_bytes = sum(local_tensor(t.tensor).nbytes for t in self.checked)
        return build_check(
            plan, violations, mode=self.mode, checks=checks, not_checked=skipped_checks,
            bytes_checked=frozen_bytes + sum(local_tensor(t.tensor).nbytes for t in trainable),
            snapshot_bytes=self.snap.nbytes + 8 * len(self._grad_start) + (0 if sweep is None else sweep.nbytes),
            optimizer_steps=None if self.hooks is None else self.steps, wrappers=self.wrappers,
            caveats=guard_caveats(self.snap.skipped, self.every, self.optimizer is not None,
                                  None if sweep is None or full or final else sweep.describe(len(self.checked))),
            guard_step=self.steps,
        )  # fmt: skip

    def _stamp(self, v: Violation, found: dict[int, Finding]) -> Violation:
        """``v`` with the step at which the guard first saw it, and how it read the tensor then. A
        change stays a change against the start, so later checks see it again: they report it as
        it was explained then, from what the optimizer saw at the steps it appeared in (the max
        change is the one measured now)."""
        key = (v.kind, v.name)
        if key not in self._first_seen:
            found_by, since = None, None
            if v.kind in _FROZEN_KINDS:
                e = self.snap.entries.get(v.name)
                finding = None if e is None or e.slot is None else found.get(e.slot)
                found_by = "full" if finding is None else finding.found_by
                if finding is not None and finding.since < self._prev_step:
                    since = finding.since  # found later than the check interval: the steps it happened between
            self._first_seen[key] = dataclasses.replace(v, step=self.steps, found_by=found_by, since_step=since)
        return dataclasses.replace(self._first_seen[key], max_abs_change=v.max_abs_change)

    # -- stop ------------------------------------------------------------------------------
    def remove(self) -> None:
        """Remove every hook the guard registered, without a last check (idempotent)."""
        if self.hooks is not None:
            self.hooks.remove()
        self._closed = True

    def close(self, *, check: bool = True) -> StepCheck | None:
        """Check once more (unless ``check=False``), then remove every hook. Returns the last report."""
        if self._closed:
            return None
        try:
            if not check:
                return None
            return self._verdict(self._judge(final=True, full=True))
        finally:
            self.remove()

    def __enter__(self) -> FreezeGuard:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # an error from the loop (the guard's own included) propagates as it is; no second report over it
        self.close(check=exc_type is None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "watching"
        return (
            f"FreezeGuard({state}, {len(self.checked)} frozen tensors, {self.mode} mode, every={self.every}, "
            f"{self.steps} steps, {self._checks} checks)"
        )


def check_settings(content: Any, sweep_checks: Any) -> None:
    """Refuse a ``content`` or ``sweep_checks`` the guard does not take, naming the value."""
    if content not in CONTENTS:
        raise TorchscopeError(f"content={content!r} is not 'sweep' or 'every-step'")
    if sweep_checks is not None and (isinstance(sweep_checks, bool) or not isinstance(sweep_checks, int)
                                     or sweep_checks < 1):  # fmt: skip
        raise TorchscopeError(
            f"sweep_checks={sweep_checks!r} must be None (chosen from the frozen bytes) or an integer >= 1 "
            "(read every frozen byte within that many checks)"
        )


def _moved(diff: Any, name: str) -> bool:
    c = diff.get(name)
    return c is not None and (c.status != "same" or bool(c.changed))


def _shape(diff: Any, name: str) -> str | None:
    c = diff.get(name)
    return None if c is None else c.shape_text


def guard(
    model: nn.Module,
    *,
    frozen: str | Sequence[str] | None = None,
    optimizer: Any = None,
    every: int = 1,
    mode: Mode = "fingerprint",
    expect_updates: bool = False,
    fail_fast: bool = True,
    content: Content = "sweep",
    sweep_checks: int | None = None,
) -> FreezeGuard:
    """Watch a real training run: raise the moment a frozen tensor moves, naming every changed tensor
    with its shape, the step it first moved at, and the cause with its fix.

    ``frozen`` defaults to what is frozen now (``requires_grad=False`` params and the buffers of
    modules whose own params are all frozen); glob patterns choose instead. With ``optimizer`` it
    checks after every ``every``-th real ``optimizer.step()`` (a step ``GradScaler`` skipped does
    not count); without one, call :meth:`FreezeGuard.check` yourself. Leaving the ``with`` block
    checks once more and removes every hook. ``mode="fingerprint"`` keeps 8 bytes per tensor;
    ``"exact"`` keeps one copy of the frozen tensors and reports the largest change.
    ``expect_updates=True`` also checks that every trainable param got a grad and moved within the
    first checks. ``fail_fast=False`` keeps the reports in ``guard.reports`` instead of raising.

    ``content`` says how a check after an optimizer step reads the frozen values. ``"sweep"`` (the
    default): buffers and params an optimizer holds are read in full at every check; every other
    frozen param by its version counter, memory address and a sample at every check (a tensor
    whose counter, address or sample moved is read in full at once), and every one of its bytes
    within ``sweep_checks`` checks by a rotating sweep (None: about 4 MiB per check, at most 64
    checks), so a write that leaves no mark (``p.data[i] = x``) is found within that many checks,
    with the steps it happened between. ``"every-step"`` reads every frozen byte at every check
    (one full pass over the frozen weights per step). The last check, and ``guard.check()``,
    read everything.

    Args:
        model: The model the loop trains.
        frozen: Glob patterns of what must stay unchanged; default: what is frozen now.
        optimizer: The loop's optimizer; checks run after its real steps.
        every: Check after every N-th optimizer step.
        mode: ``"fingerprint"`` (8 bytes per tensor) or ``"exact"`` (a copy; reports the largest change).
        expect_updates: Also check that every trainable param got a grad and moved.
        fail_fast: Raise at the first violation; ``False`` keeps the reports in ``guard.reports``.
        content: ``"sweep"`` (default) or ``"every-step"``: how a check reads the frozen values.
        sweep_checks: Read every frozen byte within this many checks (``"sweep"``); None: about
            4 MiB per check, at most 64 checks.

    Returns:
        The ``FreezeGuard``, a context manager (``with torchscope.guard(...) as g:``).

    Raises:
        TorchscopeError: A bad argument (``every`` < 1, an unknown mode, a pattern that matches nothing).
        FreezeCheckError: A frozen tensor moved (with ``fail_fast``), at the check that saw it.

    >>> import torch, torchscope
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    >>> _ = model[0].requires_grad_(False)
    >>> opt = torch.optim.SGD(model[1].parameters(), lr=0.1)
    >>> with torchscope.guard(model, optimizer=opt) as g:
    ...     for _ in range(3):
    ...         opt.zero_grad()
    ...         model(torch.randn(8, 4)).square().mean().backward()
    ...         opt.step()
    >>> g.steps, all(r.ok for r in g.reports)
    (3, True)
    """
    return FreezeGuard(
        model, frozen=frozen, optimizer=optimizer, every=every, mode=mode, expect_updates=expect_updates,
        fail_fast=fail_fast, content=content, sweep_checks=sweep_checks,
    )  # fmt: skip
