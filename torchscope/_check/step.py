"""``check_step``: run the user's real training step once and prove what was frozen stayed frozen.

Before ``step()`` it records the model by qualified name (:mod:`.snapshot`: identity, shape and
flags of every name, copies in ``exact`` mode, one 64-bit fingerprint per tensor in ``fingerprint``
mode), and reads it by name again after; an optimizer step pre-hook records what each param's
grad and optimizer state looked like at the moment ``optimizer.step()`` ran. After ``step()`` it
compares, brings every number to the host in one transfer per device, and explains each violation
with a cause: one sentence that says why it happened and what fixes it.

Violation kinds (stable names, documented in docs/freeze.md):

==============================  ==================================================================
``frozen_param_changed``        a param expected frozen changed
``frozen_buffer_changed``       a buffer of a frozen module changed (BatchNorm stats in train mode)
``trainable_not_updated``       a param that requires grad did not change
``nonfinite``                   NaN/Inf in a param, grad (``name.grad``) or buffer after the step
``optimizer_missing_param``     a trainable param is in no optimizer param group
``optimizer_frozen_param``      a frozen param in a group with weight decay, or with momentum state
``optimizer_stale_param``       the optimizer holds a tensor that is no longer in the model
``optimizer_duplicate_param``   one tensor in more than one place of the param groups
``tensor_replaced``             a name under check holds another tensor after the step (see :mod:`.byname`)
``tensor_removed``              a name under check is gone after the step
``tensor_added``                a new name where everything was frozen
``requires_grad_changed``       a param's ``requires_grad`` changed during the step
``tied_conflict``               one tensor expected frozen under one name and trainable under another
==============================  ==================================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from torchscope._check.byname import by_name_violations
from torchscope._check.causes import Causes, nonfinite_cause
from torchscope._check.snapshot import Mode, NamedSnapshot, SnapshotDiff, take_snapshot
from torchscope._check.verdict import build_check, moved_violations, not_checked, unmoved_violations
from torchscope._checkparts.numerics import Floats, host_floats, inf_norm
from torchscope._checkparts.plan import CheckedTensor, collect_tensors, local_tensor, make_plan, unwrap
from torchscope._checkparts.probe import OptimizerProbe, restoring_optimizer
from torchscope._checkparts.report import (
    KINDS,
    NOTHING_FROZEN,
    OPTIMIZER_KINDS,
    StepCheck,
    Violation,
    unused_caveat,
)
from torchscope._distributed import gather_report, should_gather
from torchscope._optaudit import audit
from torchscope._peft.review import PEFT_KINDS, PeftWatch
from torchscope._state import preserved
from torchscope.errors import TorchscopeError

__all__ = ["Mode", "check_step"]

def check_step(
    model: nn.Module,
    step: Callable[[], Any],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    frozen: str | Sequence[str] | None = None,
    mode: Mode = "exact",
    atol: float = 0.0,
    restore: bool = False,
    snapshot_device: str | torch.device | None = None,
) -> StepCheck:
    """Run ``step()`` once and check every freeze invariant; each violation comes with its cause.

    ``frozen`` defaults to the params with ``requires_grad=False`` and the buffers of modules whose
    own params are all frozen; glob patterns (``"backbone.*"``) choose params and buffers instead.
    ``mode="exact"`` copies the frozen tensors (to ``snapshot_device`` if given) and reports the
    largest change (within ``atol``); ``mode="fingerprint"`` keeps one number per tensor.
    ``restore=True`` puts params, buffers, grads, optimizer state, RNG and modes back afterwards.

    Args:
        model: The model the step trains.
        step: Runs one training step (forward, backward, ``optimizer.step()``); called once.
        optimizer: The step's optimizer, for the optimizer audit and precise causes.
        frozen: Glob patterns of the params and buffers that must stay unchanged; default: what is
            frozen now.
        mode: ``"exact"`` or ``"fingerprint"``.
        atol: In exact mode, the largest change that still passes.
        restore: Put the model, optimizer and RNG back after the check.
        snapshot_device: Where exact mode keeps its copy (``"cpu"`` saves accelerator memory).

    Returns:
        The ``StepCheck``: ``ok``, every violation with its cause, and what was checked.

    Raises:
        TorchscopeError: A bad argument (not a module or a callable, an unknown mode, a negative
            ``atol``, a pattern that matches nothing).

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    >>> model[0].requires_grad_(False)  # doctest: +ELLIPSIS
    Linear(...)
    >>> opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    >>> def step():
    ...     opt.zero_grad()
    ...     model(torch.randn(8, 4)).square().mean().backward()
    ...     opt.step()
    >>> check_step(model, step, optimizer=opt).ok
    True
    """
    if not isinstance(model, nn.Module):
        raise TorchscopeError(f"model must be an nn.Module, not {type(model).__name__}")
    if not callable(step):
        raise TorchscopeError(f"step must be a callable that runs one training step, not {type(step).__name__}")
    if mode not in ("exact", "fingerprint"):
        raise TorchscopeError(f"mode={mode!r} is not 'exact' or 'fingerprint'")
    if not (isinstance(atol, int | float) and atol >= 0 and not math.isnan(atol)):
        raise TorchscopeError(f"atol={atol!r} must be a number >= 0")
    if atol and mode != "exact":
        raise TorchscopeError(f"atol={atol} needs mode='exact'; a fingerprint only tells whether anything changed")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TorchscopeError(f"optimizer must be a torch.optim.Optimizer, not {type(optimizer).__name__}")
    snap_dev = None if snapshot_device is None else torch.device(snapshot_device)

    inner, wrappers = unwrap(model)
    if any(t.is_meta for t in inner.parameters()):
        raise TorchscopeError("the model has params on the meta device; load its weights before check_step")
    if any(isinstance(t, nn.parameter.UninitializedParameter) for t in inner.parameters()):
        raise TorchscopeError("the model has uninitialized lazy params; run one forward pass before check_step")
    with ExitStack() as stack:
        if restore:
            stack.enter_context(preserved(inner, params=True))
            stack.enter_context(restoring_optimizer(optimizer))
        result = _run(inner, step, optimizer, frozen, mode, atol, snap_dev)
    report, checked_trainable = result
    report = dataclasses.replace(report, wrappers=wrappers)
    if should_gather(inner, wrappers):
        report = gather_report(report, checked_trainable, inner)
    return report


def _finite_norms(
    params: list[CheckedTensor], buffers: list[CheckedTensor], skip: Collection[int] = ()
) -> dict[str, torch.Tensor]:
    """Name (``name.grad`` for grads) -> max |value| on the device, for every float tensor but the
    values of those in ``skip`` (ids)."""
    out: dict[str, torch.Tensor] = {}
    for t, grads in [(t, True) for t in params] + [(b, False) for b in buffers]:
        loc = local_tensor(t.tensor)
        if id(t.tensor) not in skip and loc.numel() and loc.is_floating_point():
            out[t.name] = inf_norm(loc)
        g = t.tensor.grad if grads else None
        if g is not None and local_tensor(g).numel() and local_tensor(g).is_floating_point():
            out[t.name + ".grad"] = inf_norm(local_tensor(g))
    return out


def _bad_before(
    bad_now: list[str], before: dict[str, float | None], diff: SnapshotDiff, snap: NamedSnapshot
) -> set[str]:
    """Which of ``bad_now`` (NaN/Inf after the step) already held NaN/Inf before it.

    Read before the step where it was read (trainable values, grads, unwatched buffers); a frozen
    tensor was not read twice: bit for bit unchanged, it was as bad before; changed, its exact-mode
    copy tells (one more transfer, only on this rare path); else it counts as the step's.
    """
    out = {n for n in bad_now if before.get(n) is not None and not math.isfinite(before[n] or 0.0)}
    copies: list[tuple[str, torch.Tensor]] = []
    for name in bad_now:
        if name in before:
            continue
        change = diff.get(name)
        if change is not None and change.status == "same" and change.changed is False:
            out.add(name)
        elif (copy := snap.copy_of(name)) is not None and copy.is_floating_point():
            copies.append((name, copy))
    if copies:
        norms = host_floats([inf_norm(c) for _, c in copies])
        out |= {n for (n, _), v in zip(copies, norms, strict=True) if not math.isfinite(v)}
    return out


def _run(
    model: nn.Module,
    step: Callable[[], Any],
    optimizer: torch.optim.Optimizer | None,
    frozen: str | Sequence[str] | None,
    mode: Mode,
    atol: float,
    snap_dev: torch.device | None,
) -> tuple[StepCheck, tuple[str, ...]]:
    plan = make_plan(model, frozen)
    violations: list[Violation] = list(plan.pre)
    if optimizer is not None:
        violations += audit(plan.params, optimizer, {id(t.tensor) for t in plan.frozen})

    frozen_tensors = plan.frozen + plan.frozen_buffers
    checked = [t for t in frozen_tensors if local_tensor(t.tensor).numel() > 0]
    trainable = [t for t in plan.trainable if local_tensor(t.tensor).numel() > 0]

    # Before: the model by name (identity, shape, flags), a fingerprint of everything under check
    # (bit-level) and, in exact mode, a copy of each frozen tensor; after the step it is read by
    # name again, so a tensor replaced during the step is seen, not only one edited in place.
    snap = take_snapshot(
        model, frozen=[n for t in frozen_tensors for n in t.names], trainable=[n for t in plan.trainable for n in t.names],
        mode=mode, snapshot_device=snap_dev,
    )  # fmt: skip
    with torch.no_grad():
        grad_before = [None if t.tensor.grad is None else inf_norm(local_tensor(t.tensor.grad)) for t in plan.frozen]
        # max |value| before the step, to tell NaN/Inf already there from NaN/Inf the step put there;
        # frozen values are not read again: the snapshot says whether they changed
        finite_before = _finite_norms(plan.params, plan.buffers, skip={id(t.tensor) for t in frozen_tensors})
    rg_before = [t.tensor.requires_grad for t in plan.frozen]
    snapshot_bytes = snap.nbytes + 8 * len(grad_before)

    probe = None
    if optimizer is not None:
        probe = OptimizerProbe(optimizer, [t.tensor for t in plan.frozen + plan.trainable])
    peft = PeftWatch.start(model)  # None unless a PEFT model
    try:
        step()
    except RuntimeError as exc:
        if peft is not None:
            peft.annotate(exc)
        raise
    finally:
        if probe is not None:
            probe.remove()

    floats = Floats()
    with torch.no_grad():
        resolve = snap.measure(model, floats, atol=atol)
        grad_before_i = [floats.add(g) for g in grad_before]
        grad_after_i = [
            None if t.tensor.grad is None else floats.add(inf_norm(local_tensor(t.tensor.grad)))
            for t in plan.frozen + plan.trainable
        ]
        # NaN/Inf in what the model holds now, by name (a replaced tensor is read, not the old one)
        params_now, buffers_now = collect_tensors(model)
        finite_i = [(name, floats.add(v), floats.add(finite_before.get(name)))
                    for name, v in _finite_norms(params_now, buffers_now).items()]
        sight_i: list[tuple[list[int | None], list[int | None]]] = []
        if probe is not None:
            for sight in probe.sights:
                sight_i.append(([floats.add(g) for g in sight.grad], [floats.add(m) for m in sight.momentum]))
    floats.sync()  # the one host transfer (per device) of the whole check
    diff = resolve()

    changes = [diff.get(t.name) for t in plan.frozen]
    rg_after = [bool(c is not None and c.status == "same" and c.requires_grad_after) for c in changes]
    ctx = Causes(plan, optimizer, probe, floats, sight_i, grad_before_i, grad_after_i, rg_before, rg_after)
    violations += moved_violations(plan, diff, ctx, checked)
    unmoved, no_grad = unmoved_violations(plan, diff, ctx, trainable, exact=mode == "exact")
    violations += unmoved
    violations += by_name_violations(diff)
    # NaN/Inf already there before the step are not the step's; what turned NaN during it came from them
    bad_now = [n for n, now_i, _ in finite_i if not math.isfinite(floats.get(now_i) or 0.0)]
    was_bad = _bad_before(bad_now, {n: floats.get(b) for n, _, b in finite_i if b is not None}, diff, snap)
    source = next((n for n in bad_now if n in was_bad and not n.endswith(".grad")), None)
    for name in bad_now:
        was = name in was_bad
        cause = nonfinite_cause(name, plan, before=was, source=None if was else source)
        violations.append(Violation("nonfinite", name, None, cause))

    checks = [k for k in KINDS if optimizer is not None or k not in OPTIMIZER_KINDS]
    if not plan.pattern_frozen:
        checks.remove("tied_conflict")
    caveats = []
    if peft is not None:
        pos = {t.name: j for j, t in enumerate(plan.frozen + plan.trainable)}
        violations = peft.review(violations, lambda name: ctx.grads_seen(pos[name]),
                                 [t.name for t in plan.trainable], [t.name for t in plan.frozen], plan.pattern_frozen)
        if peft.parts.heads:  # a causal LM has no new task head: nothing to check, so not shown as held
            checks += PEFT_KINDS
        caveats += peft.notes
    if not frozen_tensors:
        caveats.append(NOTHING_FROZEN)
    if no_grad:
        caveats.append(unused_caveat(no_grad))
    report = build_check(
        plan, violations, mode=mode, checks=checks, not_checked=not_checked(plan, trainable, checks),
        bytes_checked=sum(local_tensor(t.tensor).nbytes for t in frozen_tensors + plan.trainable),
        snapshot_bytes=snapshot_bytes, caveats=tuple(caveats),
        optimizer_steps=None if probe is None else len(probe.sights),
    )  # fmt: skip
    return report, tuple(t.name for t in trainable)
