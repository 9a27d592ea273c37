"""pytest-style assertions about a model and its training step.

Each helper raises :class:`AssertionError` whose message is a plain-text table (never ANSI codes,
never a wall of tensors): the offending names, their shapes, the max |Δ|, the cause and the fix.
The error's ``.check`` names the helper and ``.report`` holds its data as a dict.
Every helper leaves the model as it found it (:func:`torchscope.preserved`), except those whose
purpose is to run your step (``assert_step_ok``, ``assert_frozen``, ``expect_frozen``,
``assert_trainable_updated``).

Inputs: a tuple is passed as positional arguments (``model(*x)``); anything else, a dict included,
as the one argument (``model(x)``).

>>> import torch
>>> from torchscope.testing import assert_output_shape
>>> assert_output_shape(torch.nn.Linear(4, 2), torch.randn(3, 4), (3, 2))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope._patterns import match_names
from torchscope._state import preserved
from torchscope.errors import SpecError, TorchscopeError

__all__ = [
    "assert_batch_independent",
    "assert_eval_mode",
    "assert_frozen",
    "assert_grads_finite",
    "assert_loss_at_init",
    "assert_no_unused_params",
    "assert_output_shape",
    "assert_overfits_one_batch",
    "assert_param_count",
    "assert_step_ok",
    "assert_train_mode",
    "assert_trainable_updated",
    "expect_frozen",
]

MAX_ROWS = 20
_NORM_TYPES = (nn.modules.batchnorm._NormBase,)

# ---------------------------------------------------------------------------------------------
# Messages and records


def _fmt(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.3g}"


def _shape(t: torch.Tensor | None) -> str:
    if t is None:
        return "-"
    if isinstance(t, nn.parameter.UninitializedParameter):
        return "(uninitialized)"
    return "(" + ", ".join(str(s) for s in t.shape) + ("," if t.dim() == 1 else "") + ")"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, max_rows: int = MAX_ROWS) -> str:
    """A plain-text table, two spaces of indent, a dashed rule under the header.

    >>> print(format_table(["name", "shape"], [["fc.weight", "(2, 4)"]]))
      name       shape
      ---------  ------
      fc.weight  (2, 4)
    """
    shown = list(rows[:max_rows])
    widths = [max([len(h)] + [len(r[i]) for r in shown]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return ("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    out = [line(headers), line(["-" * w for w in widths]), *(line(r) for r in shown)]
    if len(rows) > max_rows:
        out.append(f"  ... and {len(rows) - max_rows} more")
    return "\n".join(out)


def _message(check: str, title: str, table: str, fixes: Sequence[str]) -> str:
    parts = [f"{check}: {title}", "", table]
    unique = list(dict.fromkeys(f for f in fixes if f))
    if unique:
        parts.append("")
        parts.extend(f"fix: {f}" for f in unique)
    return "\n".join(parts)


def _emit(check: str, ok: bool, message: str | None, report: dict[str, Any] | None) -> None:
    # The plugin is only in sys.modules when pytest loaded it; outside pytest this is a no-op.
    import sys

    plugin = sys.modules.get("torchscope.pytest_plugin")
    if plugin is not None:
        plugin.record_check({"check": check, "test": "", "ok": ok, "message": message, "report": report})


def _finish(check: str, message: str | None, report: dict[str, Any] | None = None) -> None:
    __tracebackhide__ = True
    _emit(check, message is None, message, report)
    if message is not None:
        # A plain AssertionError (pytest prints "AssertionError: ..."), carrying the data too.
        error = AssertionError(message)
        error.check = check  # type: ignore[attr-defined]
        error.report = report  # type: ignore[attr-defined]
        raise error


def _call(model: nn.Module, x: Any) -> Any:
    return model(*x) if isinstance(x, tuple) else model(x)


# ---------------------------------------------------------------------------------------------
# Named tensors (params and buffers), deduplicated by identity, with all their names.


@dataclass(frozen=True)
class _Named:
    name: str  # first name (as named_parameters() gives it)
    tensor: torch.Tensor
    is_param: bool
    module_name: str


def _named_tensors(model: nn.Module) -> tuple[list[_Named], dict[str, str]]:
    """Unique params and buffers, and every (alias) name -> canonical name."""
    items: dict[int, _Named] = {}
    alias: dict[str, str] = {}
    for is_param, pairs in (
        (True, model.named_parameters(remove_duplicate=False)),
        (False, model.named_buffers(remove_duplicate=False)),
    ):
        for name, t in pairs:
            if t is None:
                continue
            if id(t) not in items:
                items[id(t)] = _Named(name, t, is_param, name.rpartition(".")[0])
            alias[name] = items[id(t)].name
    return list(items.values()), alias


def _select(model: nn.Module, patterns: Sequence[str], *, params_only: bool = False) -> list[_Named]:
    named, alias = _named_tensors(model)
    if params_only:
        names = [n for n, c in alias.items() if any(x.name == c and x.is_param for x in named)]
    else:
        names = list(alias)
    picked = {alias[n] for n in match_names(names, list(patterns), what="parameter or buffer")}
    return [n for n in named if n.name in picked]


def _max_abs_diff(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """max |a - b| for each pair, with one host transfer per device (habit 4)."""
    out: list[float] = [0.0] * len(pairs)
    by_device: dict[torch.device, list[int]] = {}
    for i, (a, _) in enumerate(pairs):
        by_device.setdefault(a.device, []).append(i)
    with torch.no_grad():
        for idx in by_device.values():
            vals = []
            for i in idx:
                a, b = pairs[i]
                if a.numel() == 0:
                    vals.append(torch.zeros((), device=a.device))
                    continue
                d = (a.detach().double() - b.double()).abs()
                # NaN appearing where there was none is a change; NaN staying NaN is not.
                same_nan = a.detach().isnan() & b.isnan()
                vals.append(torch.where(same_nan, torch.zeros_like(d), d).max())
            for i, v in zip(idx, torch.stack(vals).tolist(), strict=True):
                out[i] = float(v)
    return out


def _is_meta_or_lazy(t: torch.Tensor) -> bool:
    return t.is_meta or nn.parameter.is_lazy(t)


# ---------------------------------------------------------------------------------------------
# Violations: one row per tensor, its cause and fix underneath (causes are sentences, not cells).


def _split_cause(cause: str, default_fix: str = "") -> tuple[str, str]:
    # check_step's causes read "what happened; how to fix it".
    head, sep, tail = cause.partition("; ")
    return (head, tail) if sep else (cause, default_fix)


def violation_table(violations: Sequence[Mapping[str, Any]], *, max_rows: int = MAX_ROWS) -> str:
    """Render violations (``kind``, ``name``, ``shape``, ``max_abs_change``, ``cause``, ``fix``) as text.

    Each distinct cause is written once, numbered, under the table.

    >>> print(violation_table([{"kind": "frozen_param_changed", "name": "fc.weight", "shape": "(2, 4)",
    ...                         "max_abs_change": 0.5, "cause": "requires_grad=True", "fix": "freeze it"}]))
      kind                  name       shape   max |Δ|  cause
      --------------------  ---------  ------  -------  -----
      frozen_param_changed  fc.weight  (2, 4)  0.5      [1]
    <BLANKLINE>
      [1] requires_grad=True
          fix: freeze it
    """
    shown = list(violations[:max_rows])
    causes: dict[tuple[str, str], int] = {}
    rows = []
    for v in shown:
        key = (v.get("cause") or "", v.get("fix") or "")
        number = causes.setdefault(key, len(causes) + 1)
        change = v.get("max_abs_change")
        rows.append([v["kind"], v["name"], v.get("shape", "-"), "-" if change is None else _fmt(change), f"[{number}]"])
    out = [format_table(["kind", "name", "shape", "max |Δ|", "cause"], rows, max_rows=max_rows)]
    if len(violations) > max_rows:
        out.append(f"  ... and {len(violations) - max_rows} more")
    out.append("")
    for (cause, fix), number in causes.items():
        out.append(f"  [{number}] {cause}")
        if fix:
            out.append(f"      fix: {fix}")
    return "\n".join(out)


def _violation_message(check: str, title: str, violations: Sequence[Mapping[str, Any]]) -> str:
    return f"{check}: {title}\n\n{violation_table(violations)}"


def _from_report(model: nn.Module, violations: Sequence[Any]) -> list[dict[str, Any]]:
    """check_step violations as dicts with the tensor's shape and the cause split from the fix."""
    shapes: dict[str, str] = {}
    for n, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        shapes[n] = _shape(t)
    out = []
    for v in violations:
        base = v.name[: -len(".grad")] if v.name.endswith(".grad") else v.name
        cause, fix = _split_cause(v.cause, _STEP_FIXES.get(v.kind, ""))
        out.append({"kind": v.kind, "name": v.name, "shape": shapes.get(base, shapes.get(v.name, "-")),
                    "max_abs_change": v.max_abs_change, "cause": cause, "fix": fix})
    return out


_STEP_FIXES: dict[str, str] = {
    "frozen_param_changed": "build the optimizer from trainable params only and set p.grad = None when freezing",
    "frozen_buffer_changed": "put frozen norm layers in eval mode after every model.train()",
    "trainable_not_updated": "add it to the optimizer and make sure the loss depends on it",
    "nonfinite": "lower the learning rate, clip gradients, or guard log/division in the loss",
}
_FROZEN_KINDS = ("frozen_param_changed", "frozen_buffer_changed", "tied_conflict")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def assert_step_ok(
    model: nn.Module, step: Callable[[], Any], optimizer: Any = None, **check_step_kwargs: Any
) -> None:
    """Run ``step()`` under :func:`torchscope.check_step` and fail on any violated invariant.

    ``check_step_kwargs`` go to ``check_step`` (``frozen=``, ``mode=``, ``atol=``, ``restore=``).

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> def step():
    ...     opt.zero_grad(); m(torch.randn(3, 2)).sum().backward(); opt.step()
    >>> assert_step_ok(m, step, optimizer=opt)
    """
    __tracebackhide__ = True
    from torchscope._check import check_step

    report = check_step(model, step, optimizer=optimizer, **check_step_kwargs)
    message = None
    if not report.ok:
        found = _from_report(model, report.violations)
        message = _violation_message(
            "assert_step_ok",
            f"{_plural(len(found), 'invariant')} of the training step violated "
            f"({report.frozen_params} frozen, {report.trainable_params} trainable params checked)",
            found,
        )
    _finish("assert_step_ok", message, report.to_dict())


def assert_frozen(model: nn.Module, step: Callable[[], Any], *patterns: str, optimizer: Any = None) -> None:
    """Run ``step()`` once; fail if it changed a parameter or buffer selected by ``patterns``.

    Without patterns: the params with ``requires_grad=False`` and the buffers (running stats) of
    modules whose own params are all frozen. Pass ``optimizer`` for a precise cause.

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    >>> opt = torch.optim.SGD(m[1].parameters(), lr=0.1)
    >>> def step():
    ...     opt.zero_grad(); m(torch.randn(3, 2)).sum().backward(); opt.step()
    >>> assert_frozen(m, step, "0", optimizer=opt)
    """
    __tracebackhide__ = True
    from torchscope._check import check_step

    report = check_step(model, step, optimizer=optimizer, frozen=list(patterns) if patterns else None)
    found = _from_report(model, [v for v in report.violations if v.kind in _FROZEN_KINDS])
    data = report.to_dict()
    data["ok"] = not found
    data["violations"] = [v for v in data["violations"] if v["kind"] in _FROZEN_KINDS]
    message = None
    if found:
        what = ", ".join(repr(p) for p in patterns) if patterns else "requires_grad=False"
        checked = report.frozen_params + report.frozen_buffers
        message = _violation_message(
            "assert_frozen", f"{len(found)} of {_plural(checked, 'tensor')} expected frozen ({what}) changed", found
        )
    _finish("assert_frozen", message, data)


def assert_trainable_updated(
    model: nn.Module, step: Callable[[], Any], *patterns: str, optimizer: Any = None
) -> None:
    """Run ``step()`` once; fail if a trainable parameter (selected by ``patterns``) did not change.

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(m.parameters(), lr=0.1)
    >>> def step():
    ...     opt.zero_grad(); m(torch.randn(3, 2)).sum().backward(); opt.step()
    >>> assert_trainable_updated(m, step)
    """
    __tracebackhide__ = True
    from torchscope._check import check_step

    named = [(n, p) for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad]
    names = [n for n, _ in named]
    if not names:
        raise TorchscopeError("the model has no trainable parameter; unfreeze some before this check")
    selected = set(match_names(names, list(patterns), what="trainable parameter")) if patterns else set(names)
    selected_ids = {id(p) for n, p in named if n in selected}
    by_name = dict(named)
    report = check_step(model, step, optimizer=optimizer)

    def wanted(v: Any) -> bool:
        return v.kind == "trainable_not_updated" and v.name in by_name and id(by_name[v.name]) in selected_ids

    found = _from_report(model, [v for v in report.violations if wanted(v)])
    data = report.to_dict()
    data["ok"] = not found
    data["violations"] = [v for v in data["violations"] if v["kind"] == "trainable_not_updated"]
    message = None
    if found:
        message = _violation_message(
            "assert_trainable_updated",
            f"{len(found)} of {_plural(len(selected_ids), 'trainable parameter')} were not updated by the step",
            found,
        )
    _finish("assert_trainable_updated", message, data)


# expect_frozen wraps a block, not a callable, so it snapshots the tensors itself.


def _optimizer_group(optimizer: Any, p: torch.Tensor) -> tuple[int, dict[str, Any]] | None:
    if optimizer is None:
        return None
    for gi, group in enumerate(optimizer.param_groups):
        if any(q is p for q in group["params"]):  # identity, not value (habit 3)
            return gi, group
    return None


def _frozen_cause(model: nn.Module, item: _Named, optimizer: Any) -> tuple[str, str]:
    """(cause, fix) for a tensor that should have stayed frozen but changed."""
    if not item.is_param:
        module = model.get_submodule(item.module_name)
        kind = type(module).__name__
        if isinstance(module, _NORM_TYPES) and module.training:
            return (
                f"{kind} '{item.module_name}' ran in train mode, so its running stats moved",
                "call .eval() on the frozen norm layers after every model.train(), or use "
                "torchvision.ops.FrozenBatchNorm2d",
            )
        return (f"a buffer of {kind} '{item.module_name}' was written in the block",
                "find that write, or do not expect this buffer frozen")
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
            f"call torchscope.freeze(model, '{item.name}') or p.requires_grad_(False)",
        )
    if p.grad is not None:
        return (
            f"requires_grad=False but it still has a .grad{where}, so weight decay or momentum moves it",
            "set p.grad = None after freezing, use zero_grad(set_to_none=True), and build the optimizer "
            "from trainable params only",
        )
    if group is not None:
        return (
            f"requires_grad=False{where}, and something wrote to it",
            "build the optimizer from [p for p in model.parameters() if p.requires_grad]",
        )
    return ("requires_grad=False with no grad, so something other than an optimizer wrote to it",
            "find the in-place write (.data, copy_(), an EMA, load_state_dict) and skip frozen params")


def _currently_frozen(model: nn.Module) -> list[_Named]:
    named, _ = _named_tensors(model)
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
            items = _select(model, patterns)
            self.what = ", ".join(repr(p) for p in patterns)
        else:
            items = _currently_frozen(model)
            self.what = "requires_grad=False"
        self.items = [i for i in items if not _is_meta_or_lazy(i.tensor)]
        with torch.no_grad():
            self.before = [i.tensor.detach().clone() for i in self.items]

    def finish(self, check: str) -> None:
        __tracebackhide__ = True
        diffs = _max_abs_diff([(i.tensor, b) for i, b in zip(self.items, self.before, strict=True)])
        found: list[dict[str, Any]] = []
        for item, d in zip(self.items, diffs, strict=True):
            if d > 0 or math.isnan(d):
                cause, fix = _frozen_cause(self.model, item, self.optimizer)
                kind = "frozen_param_changed" if item.is_param else "frozen_buffer_changed"
                found.append({"kind": kind, "name": item.name, "shape": _shape(item.tensor), "max_abs_change": d,
                              "cause": cause, "fix": fix})
        report = {"ok": not found, "checked": [i.name for i in self.items], "violations": found}
        message = None
        if found:
            message = _violation_message(
                check, f"{len(found)} of {_plural(len(self.items), 'tensor')} expected frozen ({self.what}) changed",
                found,
            )
        _finish(check, message, report)


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
            self._watch.finish("expect_frozen")


# ---------------------------------------------------------------------------------------------
# Gradients


def assert_grads_finite(model: nn.Module) -> None:
    """Fail if any parameter's ``.grad`` holds NaN or Inf (run it after ``loss.backward()``).

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> m(torch.randn(3, 2)).sum().backward()
    >>> assert_grads_finite(m)
    """
    __tracebackhide__ = True
    named, _ = _named_tensors(model)
    with_grad = [(n, n.tensor.grad) for n in named if n.is_param and n.tensor.grad is not None]
    counts: list[list[int]] = []
    if with_grad:
        with torch.no_grad():
            stats = torch.stack(
                [torch.stack([g.isnan().sum(), g.isinf().sum()]).to("cpu") for _, g in with_grad]  # type: ignore[union-attr]
            )
        counts = stats.tolist()
    found: list[dict[str, Any]] = []
    for (item, g), (nan, inf) in zip(with_grad, counts, strict=True):
        if nan or inf:
            found.append({"name": item.name, "shape": _shape(g), "nan": int(nan), "inf": int(inf),
                          "numel": g.numel()})  # type: ignore[union-attr]
    report = {"ok": not found, "checked": [i.name for i, _ in with_grad], "violations": found}
    message = None
    if found:
        rows = [[v["name"], v["shape"], f"{v['nan']}/{v['numel']}", f"{v['inf']}/{v['numel']}"] for v in found]
        message = _message(
            "assert_grads_finite",
            f"{len(found)} of {len(with_grad)} gradients are not finite",
            format_table(["name", "shape", "NaN", "Inf"], rows),
            ["lower the learning rate, clip gradients, or guard log/division/sqrt in the loss and forward"],
        )
    _finish("assert_grads_finite", message, report)


def _loss_of(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out if out.dim() == 0 else out.float().sum()
    raise SpecError(
        f"loss_fn_or_step returned {type(out).__name__}; return the loss tensor (or None after calling backward)"
    )


def assert_no_unused_params(model: nn.Module, loss_fn_or_step: Callable[[], Any]) -> None:
    """Fail if a trainable parameter gets no gradient from ``loss_fn_or_step``.

    ``loss_fn_or_step()`` returns a loss (backpropagated here) or calls ``backward`` itself and
    returns ``None``. Parameter values, grads, buffers and modes are restored afterwards.

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> assert_no_unused_params(m, lambda: m(torch.randn(3, 2)).sum())
    """
    __tracebackhide__ = True
    named, alias = _named_tensors(model)
    params = [n for n in named if n.is_param and n.tensor.requires_grad]
    if not params:
        raise TorchscopeError("the model has no trainable parameter; unfreeze some before this check")
    with preserved(model, params=True):
        for n in params:
            n.tensor.grad = None
        out = loss_fn_or_step()
        if out is not None:
            loss = _loss_of(out)
            # A loss that needs no grad reaches no trainable param: all of them are unused.
            if loss.requires_grad:
                loss.backward()
        unused = [n for n in params if n.tensor.grad is None]
    names_of: dict[str, list[str]] = {}
    for a, c in alias.items():
        names_of.setdefault(c, []).append(a)
    found: list[dict[str, Any]] = [{"name": n.name, "shape": _shape(n.tensor), "module": type(model.get_submodule(n.module_name)).__name__}
             for n in unused]
    report = {"ok": not found, "checked": [n.name for n in params], "violations": found}
    message = None
    if found:
        rows = [[v["name"], v["shape"], v["module"]] for v in found]
        message = _message(
            "assert_no_unused_params",
            f"{len(found)} of {len(params)} trainable parameters got no gradient "
            "(never called in forward, or their output is unused/detached)",
            format_table(["name", "shape", "module"], rows),
            [
                "use the output in the loss (e.g. inception's aux logits: loss + 0.4 * aux_loss), "
                "or freeze/remove the module (under DDP: find_unused_parameters=True)"
            ],
        )
    _finish("assert_no_unused_params", message, report)


# ---------------------------------------------------------------------------------------------
# Counts and modes


def _count(model: nn.Module) -> tuple[int, int]:
    total = trainable = 0
    for p in {id(p): p for p in model.parameters()}.values():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise TorchscopeError("the model has uninitialised lazy parameters; run one forward pass first")
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def assert_param_count(model: nn.Module, total: int | None = None, trainable: int | None = None) -> None:
    """Fail unless the model has exactly ``total`` parameters and ``trainable`` trainable ones.

    Tied/shared parameters count once.

    >>> import torch
    >>> assert_param_count(torch.nn.Linear(4, 2), total=10, trainable=10)
    """
    __tracebackhide__ = True
    if total is None and trainable is None:
        raise TorchscopeError("assert_param_count needs total= or trainable=, e.g. total=11_689_512")
    for label, v in (("total", total), ("trainable", trainable)):
        if v is not None and (not isinstance(v, int) or v < 0):
            raise TorchscopeError(f"{label}={v!r} must be an int >= 0")
    n_total, n_trainable = _count(model)
    rows = []
    if total is not None and total != n_total:
        rows.append(["total", f"{total:,}", f"{n_total:,}", f"{n_total - total:+,}"])
    if trainable is not None and trainable != n_trainable:
        rows.append(["trainable", f"{trainable:,}", f"{n_trainable:,}", f"{n_trainable - trainable:+,}"])
    report = {"ok": not rows, "total": n_total, "trainable": n_trainable,
              "expected_total": total, "expected_trainable": trainable}
    message = None
    if rows:
        children = []
        for cname, child in model.named_children():
            c_total, c_train = _count(child)
            children.append([cname, f"{c_total:,}", f"{c_train:,}"])
        table = format_table(["count", "expected", "actual", "difference"], rows)
        if children:
            table += "\n\n" + format_table(["child", "params", "trainable"], children)
        message = _message(
            "assert_param_count",
            "parameter count differs",
            table,
            ["check which modules are frozen (torchscope tree MODEL) and the head's size"],
        )
    _finish("assert_param_count", message, report)


def _mode_message(check: str, bad: list[tuple[str, nn.Module]], want: str, fix: str) -> str:
    rows = [[name or "(root)", type(m).__name__, "train" if m.training else "eval", want] for name, m in bad]
    return _message(
        check,
        f"{len(bad)} module{'s' if len(bad) != 1 else ''} in the wrong mode",
        format_table(["module", "type", "mode", "expected"], rows),
        [fix],
    )


def assert_eval_mode(model: nn.Module) -> None:
    """Fail if any module is in train mode (dropout and batch statistics active at inference).

    >>> import torch
    >>> assert_eval_mode(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout()).eval())
    """
    __tracebackhide__ = True
    bad = [(n, m) for n, m in model.named_modules() if m.training]
    message = _mode_message("assert_eval_mode", bad, "eval", "call model.eval() before inference") if bad else None
    _finish("assert_eval_mode", message, {"ok": not bad, "train_mode": [n for n, _ in bad]})


def assert_train_mode(model: nn.Module, except_: Sequence[str] | str = ()) -> None:
    """Fail unless every module is in train mode, and the modules selected by ``except_`` in eval mode.

    ``except_`` names modules you keep in eval mode while training, such as a frozen backbone's
    BatchNorm layers.

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
    >>> _ = m[1].eval()
    >>> assert_train_mode(m, except_=["1"])
    """
    __tracebackhide__ = True
    patterns = [except_] if isinstance(except_, str) else list(except_)
    modules = list(model.named_modules())
    in_eval = set(match_names([n for n, _ in modules if n], patterns, what="module")) if patterns else set()
    bad = [(n, m) for n, m in modules if m.training == (n in in_eval)]
    message = None
    if bad:
        fix = "call model.train()" + (f", then .eval() on the modules matching {patterns}" if patterns else "")
        rows = [[n or "(root)", type(m).__name__, "train" if m.training else "eval", "eval" if n in in_eval else "train"]
                for n, m in bad]
        message = _message(
            "assert_train_mode",
            f"{len(bad)} module{'s' if len(bad) != 1 else ''} in the wrong mode",
            format_table(["module", "type", "mode", "expected"], rows),
            [fix],
        )
    _finish("assert_train_mode", message, {"ok": not bad, "wrong_mode": [n for n, _ in bad]})


# ---------------------------------------------------------------------------------------------
# Output shapes


def _is_shape(spec: Any) -> bool:
    return isinstance(spec, torch.Size) or (
        isinstance(spec, (tuple, list))
        and not hasattr(spec, "_fields")
        and all((isinstance(s, int) and not isinstance(s, bool)) or s is None for s in spec)
    )


def _shape_str(shape: Sequence[int | None]) -> str:
    inner = ", ".join("*" if s is None or s == -1 else str(s) for s in shape)
    return "(" + inner + ("," if len(shape) == 1 else "") + ")"


def _compare_output(path: str, out: Any, spec: Any, rows: list[list[str]]) -> None:
    if _is_shape(spec):
        if not isinstance(out, torch.Tensor):
            rows.append([path, _shape_str(list(spec)), type(out).__name__])
            return
        want = list(spec)
        ok = len(want) == out.dim() and all(w is None or w == -1 or w == s for w, s in zip(want, out.shape, strict=False))
        if not ok:
            rows.append([path, _shape_str(want), _shape_str(list(out.shape))])
        return
    if isinstance(spec, Mapping):
        if hasattr(out, "_fields"):
            got = out._asdict()
        elif isinstance(out, Mapping):
            got = dict(out)
        else:
            rows.append([path, "{" + ", ".join(map(str, spec)) + "}", type(out).__name__])
            return
        for key, sub in spec.items():
            sub_path = f"{path}.{key}" if hasattr(out, "_fields") else f"{path}[{key!r}]"
            if key not in got:
                rows.append([sub_path, _describe(sub), "missing"])
            else:
                _compare_output(sub_path, got[key], sub, rows)
        return
    if isinstance(spec, (tuple, list)):
        if not isinstance(out, (tuple, list)) or len(out) != len(spec):
            rows.append([path, f"{len(spec)} outputs", _describe_out(out)])
            return
        for i, (o, s) in enumerate(zip(out, spec, strict=True)):
            field = getattr(out, "_fields", None)
            _compare_output(f"{path}.{field[i]}" if field else f"{path}[{i}]", o, s, rows)
        return
    raise SpecError(f"shape_or_spec {spec!r} is not a shape, a tuple/list of specs or a dict of specs; e.g. (4, 10)")


def _describe(spec: Any) -> str:
    return _shape_str(list(spec)) if _is_shape(spec) else type(spec).__name__


def _describe_out(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return "tensor " + _shape_str(list(out.shape))
    if isinstance(out, (tuple, list)):
        return f"{len(out)} outputs"
    return type(out).__name__


def assert_output_shape(model: nn.Module, input: Any, shape_or_spec: Any) -> None:
    """Run ``model(input)`` (no grad, current mode, state restored) and check the output's shape.

    ``shape_or_spec``: a shape such as ``(4, 10)`` (``None`` or ``-1`` matches any size), a
    tuple/list of specs for tuple outputs, or a dict of specs for dict and namedtuple outputs.

    >>> import torch
    >>> assert_output_shape(torch.nn.Linear(4, 2), torch.randn(3, 4), (None, 2))
    """
    __tracebackhide__ = True
    with preserved(model), torch.no_grad():
        out = _call(model, input)
    rows: list[list[str]] = []
    _compare_output("out", out, shape_or_spec, rows)
    message = None
    if rows:
        message = _message(
            "assert_output_shape",
            f"{len(rows)} output{'s' if len(rows) != 1 else ''} with an unexpected shape",
            format_table(["output", "expected", "actual"], rows),
            ["check the head's out_features and any flatten/view/permute before it"],
        )
    _finish("assert_output_shape", message, {"ok": not rows, "mismatches": rows})


# ---------------------------------------------------------------------------------------------
# Recipe checks (Karpathy, "A Recipe for Training Neural Networks")


def _float_leaves(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x] if x.is_floating_point() else []
    if isinstance(x, Mapping):
        return [t for v in x.values() for t in _float_leaves(v)]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _float_leaves(v)]
    return []


def _with_grad_leaves(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(True) if x.is_floating_point() else x
    if isinstance(x, Mapping):
        return {k: _with_grad_leaves(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_with_grad_leaves(v) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(_with_grad_leaves(v) for v in x)
    return x


def _output_leaves(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in _output_leaves(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in _output_leaves(v)]
    return []


def _ranges(idx: list[int]) -> str:
    parts: list[str] = []
    start = prev = None
    for i in [*idx, None]:  # type: ignore[list-item]
        if start is not None and (i is None or i != prev + 1):  # type: ignore[operator]
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def assert_batch_independent(model: nn.Module, x: Any, *, rtol: float = 1e-6, max_samples: int = 16) -> None:
    """Fail if output sample i depends on input sample j ≠ i (a reshape mixing the batch, BatchNorm in train mode).

    Backpropagates a random projection of each sample's outputs to the inputs, in the model's
    current mode; sample j leaks into i when max |∂out_i/∂x_j| > rtol · max |∂out_i/∂x_i|.
    Values, grads, buffers, modes and RNG are restored.

    >>> import torch
    >>> assert_batch_independent(torch.nn.Linear(3, 2), torch.randn(4, 3))
    """
    __tracebackhide__ = True
    leaves = _float_leaves(x)
    if not leaves:
        raise SpecError("x has no floating-point tensor to differentiate; pass float inputs (e.g. embedded tokens)")
    batch = leaves[0].shape[0] if leaves[0].dim() else 0
    if batch < 2:
        raise SpecError(f"x has batch size {batch}; assert_batch_independent needs a batch of at least 2")
    n = min(batch, max_samples)
    with preserved(model):
        xg = _with_grad_leaves(x)
        inputs = [t for t in _float_leaves(xg) if t.dim() and t.shape[0] == batch]
        out = _call(model, xg)
        outs = [o for o in _output_leaves(out) if o.dim() and o.shape[0] == batch and o.requires_grad]
        if not outs:
            raise SpecError("the model's outputs have no differentiable tensor with the batch dimension first")
        gen = torch.Generator(device="cpu").manual_seed(0)
        weights = [torch.randn(o.shape[1:], generator=gen).to(o.device, o.dtype) for o in outs]
        dep_rows = []
        for i in range(n):
            proj = torch.stack([(o[i] * w).sum() for o, w in zip(outs, weights, strict=True)]).sum()
            grads = torch.autograd.grad(proj, inputs, retain_graph=True, allow_unused=True)
            per_sample = torch.zeros(batch, device=inputs[0].device, dtype=torch.float64)
            for g in grads:
                if g is not None:
                    per_sample = torch.maximum(per_sample, g.detach().abs().reshape(batch, -1).amax(1).double().to(per_sample.device))
            dep_rows.append(per_sample)
        dep = torch.stack(dep_rows).cpu().tolist()  # one host sync
    if not any(v for row in dep for v in row):
        raise SpecError(
            "every gradient of the outputs with respect to x is zero (a zero-initialised head?), so batch "
            "independence cannot be seen; run the check with a non-zero head, or on the backbone"
        )
    leaks = []
    for i, row in enumerate(dep):
        own = row[i]
        others = [j for j, v in enumerate(row) if j != i and (v > rtol * own if own > 0 else v > 0)]
        if others:
            leaks.append({"sample": i, "depends_on": others, "max_cross_grad": max(row[j] for j in others),
                          "own_grad": own})
    norm_train = [(name, type(m).__name__) for name, m in model.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    report = {"ok": not leaks, "samples_checked": n, "leaks": leaks}
    message = None
    if leaks:
        rows = [[str(v["sample"]), _ranges(v["depends_on"]), _fmt(v["max_cross_grad"]), _fmt(v["own_grad"])]
                for v in leaks]
        fixes = []
        if norm_train:
            name, kind = norm_train[0]
            more = f" (and {len(norm_train) - 1} more)" if len(norm_train) > 1 else ""
            fixes.append(f"{kind} {name!r}{more} is in train mode and mixes the batch: run this check after "
                         "model.eval(), or use GroupNorm/LayerNorm")
        fixes.append("look for view/reshape/transpose calls that move the batch dimension (dim 0)")
        message = _message(
            "assert_batch_independent",
            f"{len(leaks)} of {n} output samples depend on other input samples",
            format_table(["output sample", "depends on input samples", "max |∂out_i/∂x_j|", "max |∂out_i/∂x_i|"],
                         rows),
            fixes,
        )
    _finish("assert_batch_independent", message, report)


def _first_tensor(out: Any) -> torch.Tensor:
    leaves = _output_leaves(out)
    if not leaves:
        raise SpecError(f"the model returned {type(out).__name__}; pass loss_fn=(output, y) -> loss")
    return leaves[0]


def assert_loss_at_init(
    model: nn.Module,
    x: Any,
    y: torch.Tensor,
    num_classes: int,
    rtol: float = 0.1,
    *,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """Fail unless the loss at init is within ``rtol`` of −log(1/C) = log(C) (cross-entropy).

    ``loss_fn(output, y)`` defaults to cross-entropy on the first output tensor. Runs without
    grad in the current mode; state restored.

    >>> import torch
    >>> m = torch.nn.Linear(8, 5)
    >>> torch.nn.init.zeros_(m.weight)
    Parameter containing:...
    >>> assert_loss_at_init(m, torch.randn(16, 8), torch.randint(0, 5, (16,)), num_classes=5)
    """
    __tracebackhide__ = True
    if not isinstance(num_classes, int) or num_classes < 2:
        raise SpecError(f"num_classes={num_classes!r} must be an int >= 2")
    if rtol <= 0:
        raise SpecError(f"rtol={rtol!r} must be > 0, e.g. rtol=0.1")
    expected = math.log(num_classes)
    with preserved(model), torch.no_grad():
        out = _call(model, x)
        logits = _first_tensor(out)
        if loss_fn is None:
            loss_t = torch.nn.functional.cross_entropy(logits.float(), y)
        else:
            loss_t = loss_fn(out, y)
        stats = torch.stack([loss_t.detach().float().reshape(()), logits.detach().float().std()]).tolist()
    loss, logit_std = float(stats[0]), float(stats[1])
    rel = abs(loss - expected) / expected
    ok = rel <= rtol
    report = {"ok": ok, "loss": loss, "expected": expected, "relative_error": rel, "logit_std": logit_std}
    message = None
    if not ok:
        rows = [[_fmt(loss), _fmt(expected), f"{rel:.1%}", f"{rtol:.1%}", _fmt(logit_std)]]
        fix = (
            "initialise the last layer small (e.g. nn.init.zeros_(head.weight); set its bias to the log class prior)"
            if loss > expected
            else "the loss is below chance at init: check for label leakage into the input, or the loss's reduction"
        )
        message = _message(
            "assert_loss_at_init",
            f"loss at init {_fmt(loss)} is not near -log(1/{num_classes}) = {_fmt(expected)}",
            format_table(["loss", "expected", "relative error", "rtol", "logit std"], rows),
            [fix],
        )
    _finish("assert_loss_at_init", message, report)


def assert_overfits_one_batch(
    model: nn.Module,
    batch: tuple[Any, Any],
    steps: int = 100,
    target_loss: float = 0.05,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    lr: float = 1e-2,
    optimizer_factory: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
) -> None:
    """Fail unless ``steps`` optimizer steps on one ``(x, y)`` batch drive the loss below ``target_loss``.

    Trains the trainable parameters with Adam(lr) (or ``optimizer_factory(params)``) in the
    model's current mode, then restores values, grads, buffers, modes and RNG.

    >>> import torch
    >>> m = torch.nn.Linear(4, 3)
    >>> assert_overfits_one_batch(m, (torch.randn(4, 4), torch.tensor([0, 1, 2, 0])), steps=200, lr=0.1)
    """
    __tracebackhide__ = True
    if not isinstance(steps, int) or steps < 1:
        raise SpecError(f"steps={steps!r} must be an int >= 1")
    try:
        x, y = batch
    except (TypeError, ValueError):
        raise SpecError("batch must be a pair (x, y)") from None
    params = [p for p in {id(p): p for p in model.parameters()}.values() if p.requires_grad]
    if not params:
        raise TorchscopeError("the model has no trainable parameter; unfreeze some before this check")
    history: list[torch.Tensor] = []
    no_path = False
    with preserved(model, params=True):
        opt = optimizer_factory(params) if optimizer_factory else torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            out = _call(model, x)
            loss = loss_fn(out, y) if loss_fn else torch.nn.functional.cross_entropy(_first_tensor(out), y)
            history.append(loss.detach().float().reshape(()))
            if not bool(torch.isfinite(history[-1])):
                break
            if not loss.requires_grad:
                no_path = True
                break
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = _call(model, x)
            final_t = loss_fn(out, y) if loss_fn else torch.nn.functional.cross_entropy(_first_tensor(out), y)
        history.append(final_t.detach().float().reshape(()))
        curve = torch.stack(history).cpu().tolist()
    final = float(curve[-1])
    ok = math.isfinite(final) and final <= target_loss
    report = {"ok": ok, "initial_loss": curve[0], "final_loss": final, "min_loss": min(curve),
              "steps": len(curve) - 1, "target_loss": target_loss}
    message = None
    if not ok:
        marks = sorted({0, *(round(k * (len(curve) - 1) / 4) for k in range(1, 5))})
        rows = [[str(k), _fmt(float(curve[k]))] for k in marks]
        if no_path:
            fix = "the loss does not depend on any trainable parameter: unfreeze the layers you mean to train"
        elif not math.isfinite(final):
            fix = "the loss became non-finite: lower lr, check the loss for log(0)"
        elif final >= curve[0]:
            fix = "the loss did not decrease: check the optimizer sees the parameters, the labels, and the lr"
        else:
            fix = "the loss decreases too slowly: raise steps or lr; check capacity and that nothing is frozen"
        message = _message(
            "assert_overfits_one_batch",
            f"loss {_fmt(final)} after {len(curve) - 1} steps on one batch, target {_fmt(target_loss)}",
            format_table(["step", "loss"], rows),
            [fix],
        )
    _finish("assert_overfits_one_batch", message, report)
