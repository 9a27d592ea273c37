"""The assertions that run your training step: ``assert_step_ok``, ``assert_frozen``,
``expect_frozen`` (a block instead of a callable) and ``assert_trainable_updated``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from torchscope._check.byname import BY_NAME_KINDS, by_name_violations
from torchscope._check.snapshot import take_snapshot
from torchscope._check.step import check_step
from torchscope._checkparts.grouping import FREEZE_FIX
from torchscope._checkparts.plan import make_plan, unwrap
from torchscope._checkparts.report import StepCheck, Violation
from torchscope._patterns import match_names
from torchscope._testing.messages import (
    finish,
    group_rows,
    literal_call,
    plural,
    shape_of,
    split_cause,
    violation_message,
)
from torchscope._testing.tensors import Named, is_meta_or_lazy, named_tensors, select
from torchscope.errors import TorchscopeError

__all__ = ["assert_frozen", "assert_step_ok", "assert_trainable_updated", "expect_frozen"]

_NORM_TYPES = (nn.modules.batchnorm._NormBase,)


def _from_report(model: nn.Module, report: StepCheck, violations: Sequence[Violation]) -> list[dict[str, Any]]:
    """check_step violations as dicts with the tensor's shape, the cause split from the fix, and the
    one call check_step found for the violation's whole group (it knows which params stay trainable)."""
    shapes: dict[str, str] = {}
    for n, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        shapes[n] = shape_of(t)
    calls = {(g.kind, n): g.fix for g in report.groups if g.fix for n in g.names}
    out = []
    for v in violations:
        base = v.name[: -len(".grad")] if v.name.endswith(".grad") else v.name
        cause, fix = split_cause(v.cause, _STEP_FIXES.get(v.kind, ""))
        call = calls.get((v.kind, v.name))
        out.append({"kind": v.kind, "name": v.name, "shape": shapes.get(base, shapes.get(v.name, "-")),
                    "max_abs_change": v.max_abs_change, "cause": cause, "fix": fix,
                    "call": None if call is None else literal_call(call)})
    return out


def _conclude(check: str, title: str, model: nn.Module, report: StepCheck, violations: Sequence[Violation]) -> None:
    """Fail with the table of ``violations`` (grouped by cause); the report keeps just those."""
    __tracebackhide__ = True
    found = _from_report(model, report, violations)
    groups = group_rows(found)
    data = report.to_dict()
    data["ok"] = not found
    data["violations"] = [v.to_dict() for v in violations]
    data["groups"] = [g.to_dict() for g in groups]
    finish(check, violation_message(check, title, found, groups) if found else None, data)


_STEP_FIXES: dict[str, str] = {
    "frozen_param_changed": "build the optimizer from trainable params only and set p.grad = None when freezing",
    "frozen_buffer_changed": "put frozen norm layers in eval mode after every model.train()",
    "trainable_not_updated": "add it to the optimizer and make sure the loss depends on it",
    "nonfinite": "lower the learning rate, clip gradients, or guard log/division in the loss",
}
_FROZEN_KINDS = ("frozen_param_changed", "frozen_buffer_changed", "tied_conflict", "tensor_added")


def _nothing_frozen(check: str) -> TorchscopeError:
    return TorchscopeError(
        f"nothing in the model is frozen (no param has requires_grad=False), so {check} has nothing to check; "
        f"freeze something first, or name what must stay frozen: {check}(model, 'backbone.*', ...)"
    )


def assert_step_ok(
    model: nn.Module, step: Callable[[], Any], optimizer: Any = None, **check_step_kwargs: Any
) -> None:
    """Run ``step()`` under :func:`torchscope.check_step` and fail on any violated invariant.

    ``check_step_kwargs`` go to ``check_step`` (``frozen=``, ``mode=``, ``atol=``, ``restore=``).

    Args:
        model: The model the step trains.
        step: Runs one training step; called once.
        optimizer: The step's optimizer, for the audit and precise causes.
        **check_step_kwargs: Keyword arguments for ``check_step``.

    Raises:
        AssertionError: An invariant was violated; the message lists every violation.

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> def step():
    ...     opt.zero_grad(); m(torch.randn(3, 2)).sum().backward(); opt.step()
    >>> assert_step_ok(m, step, optimizer=opt)
    """
    __tracebackhide__ = True
    report = check_step(model, step, optimizer=optimizer, **check_step_kwargs)
    title = (
        f"{plural(len(report.violations), 'invariant')} of the training step violated "
        f"({report.frozen_params} frozen, {report.trainable_params} trainable params checked)"
    )
    _conclude("assert_step_ok", title, model, report, report.violations)


def assert_frozen(model: nn.Module, step: Callable[[], Any], *patterns: str, optimizer: Any = None) -> None:
    """Run ``step()`` once; fail if it changed a parameter or buffer selected by ``patterns``.

    Without patterns: the params with ``requires_grad=False`` and the buffers (running stats) of
    modules whose own params are all frozen. Pass ``optimizer`` for a precise cause.

    Args:
        model: The model the step trains.
        step: Runs one training step; called once.
        *patterns: Glob patterns of the params and buffers that must stay unchanged.
        optimizer: The step's optimizer, for a precise cause.

    Raises:
        AssertionError: A selected param or buffer changed.
        TorchscopeError: Nothing is frozen (without patterns), or a pattern matches nothing.

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    >>> opt = torch.optim.SGD(m[1].parameters(), lr=0.1)
    >>> def step():
    ...     opt.zero_grad(); m(torch.randn(3, 2)).sum().backward(); opt.step()
    >>> assert_frozen(m, step, "0", optimizer=opt)
    """
    __tracebackhide__ = True
    plan = make_plan(unwrap(model)[0], list(patterns) if patterns else None)
    if not plan.frozen and not plan.frozen_buffers:
        raise _nothing_frozen("assert_frozen")
    # by name: a frozen tensor replaced, gone or switched back on during the step is a frozen one that changed
    frozen_names = {n for t in plan.frozen + plan.frozen_buffers for n in t.names}
    report = check_step(model, step, optimizer=optimizer, frozen=list(patterns) if patterns else None)
    found = [
        v for v in report.violations
        if v.kind in _FROZEN_KINDS or (v.kind in BY_NAME_KINDS and v.name in frozen_names)
    ]
    what = ", ".join(repr(p) for p in patterns) if patterns else "requires_grad=False"
    checked = report.frozen_params + report.frozen_buffers
    title = f"{len(found)} of {plural(checked, 'tensor')} expected frozen ({what}) changed"
    _conclude("assert_frozen", title, model, report, found)


def assert_trainable_updated(
    model: nn.Module, step: Callable[[], Any], *patterns: str, optimizer: Any = None
) -> None:
    """Run ``step()`` once; fail if a trainable parameter (selected by ``patterns``) did not change.

    Args:
        model: The model the step trains.
        step: Runs one training step; called once.
        *patterns: Glob patterns of the params that must change; default every trainable one.
        optimizer: The step's optimizer, for a precise cause.

    Raises:
        AssertionError: A selected trainable parameter did not change.
        TorchscopeError: The model has no trainable parameter.

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> def step():
    ...     opt.zero_grad(); m(torch.randn(3, 2)).sum().backward(); opt.step()
    >>> assert_trainable_updated(m, step)
    """
    __tracebackhide__ = True
    named = [(n, p) for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad]
    names = [n for n, _ in named]
    if not names:
        raise TorchscopeError("the model has no trainable parameter; unfreeze some before this check")
    selected = set(match_names(names, list(patterns), what="trainable parameter")) if patterns else set(names)
    selected_ids = {id(p) for n, p in named if n in selected}
    by_name = dict(named)
    report = check_step(model, step, optimizer=optimizer)
    found = [
        v for v in report.violations
        if v.kind == "trainable_not_updated" and v.name in by_name and id(by_name[v.name]) in selected_ids
    ]
    title = f"{len(found)} of {plural(len(selected_ids), 'trainable parameter')} were not updated by the step"
    _conclude("assert_trainable_updated", title, model, report, found)


# expect_frozen wraps a block, not a callable, so it snapshots the tensors itself.


def _optimizer_group(optimizer: Any, p: torch.Tensor) -> tuple[int, dict[str, Any]] | None:
    if optimizer is None:
        return None
    for gi, group in enumerate(optimizer.param_groups):
        if any(q is p for q in group["params"]):  # identity, not value (habit 3)
            return gi, group
    return None


def _frozen_cause(model: nn.Module, item: Named, optimizer: Any) -> tuple[str, str, str | None]:
    """(cause, fix, call template) for a tensor that should have stayed frozen but changed.

    Causes name no tensor or module, so every tensor with the same cause shares one line.
    """
    if not item.is_param:
        module = model.get_submodule(item.module_name)
        kind = type(module).__name__
        if isinstance(module, _NORM_TYPES) and module.training:
            return (
                f"its {kind} module ran in train mode, so its running stats moved",
                "call .eval() on the frozen norm layers after every model.train(), or use "
                "torchvision.ops.FrozenBatchNorm2d",
                None,
            )
        return (f"a buffer of its {kind} module was written in the block",
                "find that write, or do not expect this buffer frozen", None)
    p = item.tensor
    group = _optimizer_group(optimizer, p)
    where = ""
    if group is not None:
        gi, g = group
        extras = ", ".join(f"{k}={g[k]}" for k in ("lr", "weight_decay", "momentum") if k in g)
        where = f", in optimizer group {gi} ({extras})"
    if p.requires_grad:
        return (
            f"it has requires_grad=True{where}, so backward gives it a grad and the optimizer updates it",
            "",
            FREEZE_FIX,
        )
    if p.grad is not None:
        return (
            f"requires_grad=False but it still has a .grad{where}, so weight decay or momentum moves it",
            "set p.grad = None after freezing, use zero_grad(set_to_none=True), and build the optimizer "
            "from trainable params only",
            None,
        )
    if group is not None:
        return (
            f"requires_grad=False{where}, and something wrote to it",
            "build the optimizer from [p for p in model.parameters() if p.requires_grad]",
            None,
        )
    return ("requires_grad=False with no grad, so something other than an optimizer wrote to it",
            "find the in-place write (.data, copy_(), an EMA, load_state_dict) and skip frozen params", None)


def _currently_frozen(model: nn.Module) -> list[Named]:
    named, _ = named_tensors(model)
    frozen = [n for n in named if n.is_param and not n.tensor.requires_grad]
    frozen_modules = set()
    for mname, m in model.named_modules():
        ps = list(m.parameters(recurse=False))
        if ps and not any(p.requires_grad for p in ps):
            frozen_modules.add(mname)
    return frozen + [n for n in named if not n.is_param and n.module_name in frozen_modules]


class _FrozenWatch:
    def __init__(self, model: nn.Module, patterns: Sequence[str], optimizer: Any) -> None:
        self.model = model
        self.optimizer = optimizer
        if patterns:
            items = select(model, patterns)
            self.what = ", ".join(repr(p) for p in patterns)
        else:
            items = _currently_frozen(model)
            self.what = "requires_grad=False"
            if not items:
                raise _nothing_frozen("expect_frozen")
        self.items = [i for i in items if not is_meta_or_lazy(i.tensor)]
        if not self.items:
            raise TorchscopeError(
                f"every tensor {self.what} selects is on the meta device or lazy, so expect_frozen has no values to "
                "compare; load the weights (or run one forward pass) first"
            )
        # The block is compared by name (every alias too): a tensor it replaces is seen, not only one it edits.
        canonical = {i.name for i in self.items}
        _, alias = named_tensors(model)
        self.snapshot = take_snapshot(model, frozen=[n for n, c in alias.items() if c in canonical], mode="exact")

    def conclude(self, check: str) -> None:
        __tracebackhide__ = True
        # check_step's own definition of "changed": complex values compare as complex, int64 as
        # int64 (exact above 2**53), a new NaN is an infinite change and a NaN that stays is none.
        diff = self.snapshot.compare(self.model)
        found: list[dict[str, Any]] = []
        for item in self.items:
            change = diff.get(item.name)
            if change is not None and change.moved:
                cause, fix, call = _frozen_cause(self.model, item, self.optimizer)
                kind = "frozen_param_changed" if item.is_param else "frozen_buffer_changed"
                found.append({"kind": kind, "name": item.name, "shape": shape_of(item.tensor),
                              "max_abs_change": change.max_abs_change, "cause": cause, "fix": fix, "call": call})
        for v in by_name_violations(diff, roles=("frozen",)):
            cause, fix = split_cause(v.cause)
            change = diff.get(v.name)
            found.append({"kind": v.kind, "name": v.name, "shape": "-" if change is None else change.shape_text,
                          "max_abs_change": v.max_abs_change, "cause": cause, "fix": fix, "call": v.fix})
        # The one call that freezes a group must leave the params outside the check trainable.
        watched = {id(i.tensor) for i in self.items}
        keep = [n for n, p in self.model.named_parameters(remove_duplicate=False)
                if p.requires_grad and id(p) not in watched]
        groups = group_rows(found, keep=keep)
        # Each violation's call template is filled in once, in its group.
        rows = [{k: v for k, v in f.items() if k != "call"} for f in found]
        report = {"ok": not found, "checked": [i.name for i in self.items], "violations": rows,
                  "groups": [g.to_dict() for g in groups]}
        text = None
        if found:
            text = violation_message(
                check, f"{len(found)} of {plural(len(self.items), 'tensor')} expected frozen ({self.what}) changed",
                found, groups,
            )
        finish(check, text, report)


class expect_frozen:
    """Fail if the block changes any parameter or buffer selected by ``patterns``.

    Without patterns: every parameter with ``requires_grad=False`` and the buffers (running
    statistics) of modules whose own parameters are all frozen. Pass ``optimizer`` to name the
    group that moved a frozen tensor. The block's own exceptions pass through unchecked.

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    >>> with expect_frozen(m, "0"):
    ...     _ = m(torch.randn(3, 2))
    """

    def __init__(self, model: nn.Module, *patterns: str, optimizer: Any = None) -> None:
        self._watch = _FrozenWatch(model, patterns, optimizer)

    def __enter__(self) -> expect_frozen:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        __tracebackhide__ = True
        if exc_type is None:
            self._watch.conclude("expect_frozen")
