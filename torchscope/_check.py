"""``check_step``: run the user's real training step once and prove what was frozen stayed frozen.

Before ``step()`` it records the tensors under check (copies in ``exact`` mode, one 64-bit
fingerprint per tensor in ``fingerprint`` mode); an optimizer step pre-hook records what each param's
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
``tied_conflict``               one tensor expected frozen under one name and trainable under another
==============================  ==================================================================
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from torchscope._fingerprint import fingerprint_tensor
from torchscope._patterns import match_names, no_match_message
from torchscope._state import preserved
from torchscope.errors import PatternError, TorchscopeError

KINDS: tuple[str, ...] = (
    "frozen_param_changed",
    "frozen_buffer_changed",
    "trainable_not_updated",
    "nonfinite",
    "optimizer_missing_param",
    "optimizer_frozen_param",
    "optimizer_stale_param",
    "optimizer_duplicate_param",
    "tied_conflict",
)
OPTIMIZER_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k.startswith("optimizer_"))

Mode = Literal["exact", "fingerprint"]

# Elements compared per chunk in exact mode: the difference of a chunk is the largest temporary
# (4 MiB for float32), whatever the size of the tensor; larger chunks pay less per-op overhead.
_DIFF_CHUNK = 1 << 20


@dataclass(frozen=True)
class Violation:
    """One broken invariant: what (``kind``), where (qualified ``name``), how much, and why.

    ``max_abs_change`` is the largest absolute change of an element (exact mode), or None where no
    value is known (fingerprint mode, optimizer audit, tied names).
    """

    kind: str
    name: str
    max_abs_change: float | None
    cause: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "max_abs_change": json_float(self.max_abs_change), "cause": self.cause}


def json_float(x: float | None) -> float | str | None:
    """A float JSON can hold: ``inf``/``nan`` become the strings ``"inf"``/``"nan"`` (strict JSON has neither)."""
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


@dataclass(frozen=True)
class StepReport:
    """What :func:`check_step` checked and every violation it found. Plain data.

    ``checks`` lists the violation kinds that were checked (the optimizer kinds only when an
    optimizer was given); ``str(report)`` is a plain-text table.
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
            "violations": [v.to_dict() for v in self.violations],
        }

    def __str__(self) -> str:
        verdict = "OK" if self.ok else f"FAILED, {len(self.violations)} violation(s)"
        lines = [
            f"check_step ({self.mode} mode): {verdict}",
            f"checked {self.frozen_params} frozen and {self.trainable_params} trainable of {self.params} params, "
            f"{self.frozen_buffers} frozen of {self.buffers} buffers ({format_bytes(self.bytes_checked)}); "
            f"snapshot {format_bytes(self.snapshot_bytes)}",
        ]
        if self.violations:
            rows = [("kind", "name", "max |change|")]
            rows += [(v.kind, v.name, _fmt_change(v.max_abs_change)) for v in self.violations]
            w0 = max(len(r[0]) for r in rows)
            w1 = max(len(r[1]) for r in rows)
            lines.append("")
            lines.append(f"{rows[0][0]:<{w0}}  {rows[0][1]:<{w1}}  {rows[0][2]}")
            # A cause shared by a run of rows (60 BatchNorm buffers drifting) is printed once,
            # under the run, so the table stays readable.
            run = 0
            for i, (row, v) in enumerate(zip(rows[1:], self.violations, strict=True)):
                lines.append(f"{row[0]:<{w0}}  {row[1]:<{w1}}  {row[2]}")
                run += 1
                nxt = self.violations[i + 1] if i + 1 < len(self.violations) else None
                if nxt is None or nxt.cause != v.cause:
                    label = "cause" if run == 1 else f"cause (all {run} above)"
                    lines.append(f"    {label}: {v.cause}")
                    run = 0
        return "\n".join(lines)


def _fmt_change(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def format_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - loop always returns


# ---------------------------------------------------------------------------------------------
# What is under check.


def _local(t: torch.Tensor) -> torch.Tensor:
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


@dataclass
class _Tensor:
    names: list[str]
    tensor: torch.Tensor
    module_name: str = ""
    module: nn.Module | None = None

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass
class _Plan:
    params: list[_Tensor]
    buffers: list[_Tensor]
    frozen: list[_Tensor]
    trainable: list[_Tensor]
    frozen_buffers: list[_Tensor]
    pattern_frozen: bool
    pre: list[Violation] = field(default_factory=list)


def _unwrap(model: nn.Module) -> tuple[nn.Module, tuple[str, ...]]:
    from torchscope._loader import unwrap

    return unwrap(model)


def _collect(model: nn.Module) -> tuple[list[_Tensor], list[_Tensor]]:
    params: dict[int, _Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in params:
            params[id(p)].names.append(name)
        else:
            params[id(p)] = _Tensor([name], p)
    buffers: dict[int, _Tensor] = {}
    for mname, module in model.named_modules(remove_duplicate=False):
        for bname, b in module._buffers.items():
            if b is None:
                continue
            qual = f"{mname}.{bname}" if mname else bname
            if id(b) in buffers:
                buffers[id(b)].names.append(qual)
            else:
                buffers[id(b)] = _Tensor([qual], b, mname, module)
    return list(params.values()), list(buffers.values())


def _module_frozen(model: nn.Module, only: Sequence[str] | None = None) -> dict[str, bool]:
    """Module name -> whether it counts as frozen: its own params are all frozen; a module without
    params of its own follows its nearest ancestor that has any params."""
    modules = dict(model.named_modules(remove_duplicate=False))
    out: dict[str, bool] = {}
    for mname in modules if only is None else dict.fromkeys(only):
        prefix = mname
        while True:
            module = modules[prefix]
            own = list(module.parameters(recurse=False))
            subtree = own if own or prefix == mname else list(module.parameters())
            if subtree:
                out[mname] = not any(p.requires_grad for p in subtree)
                break
            if not prefix:
                out[mname] = False
                break
            prefix = prefix.rpartition(".")[0]
    return out


def _select(names: Sequence[str], patterns: Sequence[str]) -> set[str]:
    """``match_names`` for many patterns: plain names (no glob characters) are looked up by prefix
    in a dict, so a list of thousands of exact names costs linear, not quadratic, time."""
    by_prefix: dict[str, list[str]] = {}
    for n in names:
        parts = n.split(".")
        for i in range(1, len(parts) + 1):
            by_prefix.setdefault(".".join(parts[:i]), []).append(n)
    selected: set[str] = set()
    globs = []
    for p in patterns:
        if any(c in p for c in "*?["):
            globs.append(p)
        elif p in by_prefix:
            selected.update(by_prefix[p])
        else:
            raise PatternError(no_match_message(p, list(names), what="parameter or buffer"))
    if globs:
        selected.update(match_names(names, globs, what="parameter or buffer"))
    return selected


def _split(frozen: str | Sequence[str]) -> list[str]:
    items = [frozen] if isinstance(frozen, str) else list(frozen)
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def _plan(model: nn.Module, frozen: str | Sequence[str] | None) -> _Plan:
    params, buffers = _collect(model)
    pre: list[Violation] = []
    if frozen is None:
        frozen_params = [t for t in params if not t.tensor.requires_grad]
        module_frozen = _module_frozen(model, [b.module_name for b in buffers])
        frozen_buffers = [b for b in buffers if module_frozen.get(b.module_name, False)]
    else:
        patterns = _split(frozen)
        if not patterns:
            raise TorchscopeError(f"frozen={frozen!r} holds no pattern; pass e.g. frozen=['backbone.*'] or None")
        all_names = [n for t in params for n in t.names] + [n for b in buffers for n in b.names]
        selected = _select(all_names, patterns)
        frozen_params = [t for t in params if any(n in selected for n in t.names)]
        frozen_buffers = [b for b in buffers if any(n in selected for n in b.names)]
        for t in frozen_params:
            inside = [n for n in t.names if n in selected]
            outside = [n for n in t.names if n not in selected]
            if outside:
                pre.append(_tied_violation(t, inside, outside))
    frozen_ids = {id(t.tensor) for t in frozen_params}
    trainable = [t for t in params if t.tensor.requires_grad and id(t.tensor) not in frozen_ids]
    return _Plan(params, buffers, frozen_params, trainable, frozen_buffers, frozen is not None, pre)


def _tied_violation(t: _Tensor, frozen_names: list[str], other_names: list[str]) -> Violation:
    a, b = frozen_names[0], other_names[0]
    if t.tensor.requires_grad:
        cause = (
            f"'{b}' is the same tensor as '{a}': it is expected frozen as '{a}' but trainable as '{b}' "
            f"(requires_grad=True), so training '{b}' changes '{a}'; untie them (give '{b}' its own copy) "
            f"or freeze both names"
        )
    else:
        cause = (
            f"'{b}' is the same tensor as '{a}': freezing '{a}' also froze '{b}', which is expected to "
            f"train; untie them (give '{b}' its own copy) or expect both frozen"
        )
    return Violation("tied_conflict", b, None, cause)


# ---------------------------------------------------------------------------------------------
# What the optimizer saw when optimizer.step() ran.

# State that keeps moving a param whose grad is zero: SGD momentum, Adam/AdamW first moment.
_MOMENTUM_KEYS = ("momentum_buffer", "exp_avg")


@dataclass
class _StepSight:
    grad: list[torch.Tensor | None]  # inf-norm of the grad at optimizer.step(), None when no grad
    momentum: list[torch.Tensor | None]  # inf-norm of momentum-like state, None when no state


class _OptimizerProbe:
    """A step pre-hook on the optimizer that records, per watched param, grad and state at step time."""

    def __init__(self, optimizer: torch.optim.Optimizer, watched: list[torch.Tensor]) -> None:
        self.optimizer = optimizer
        self.watched = watched
        self.sights: list[_StepSight] = []
        self.handle = optimizer.register_step_pre_hook(self._hook)

    def _hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        grads: list[torch.Tensor | None] = []
        moms: list[torch.Tensor | None] = []
        with torch.no_grad():
            for p in self.watched:
                g = p.grad
                grads.append(None if g is None else _inf_norm(_local(g)))
                state = optimizer.state.get(p, {})
                mom = [v for k, v in state.items() if k in _MOMENTUM_KEYS and isinstance(v, torch.Tensor)]
                moms.append(_inf_norm(_local(mom[0])) if mom else None)
        self.sights.append(_StepSight(grads, moms))

    def remove(self) -> None:
        self.handle.remove()


def _wide(device: torch.device) -> torch.dtype:
    """The widest float a device computes in: float64, except on MPS, which has none."""
    return torch.float32 if device.type == "mps" else torch.float64


def _inf_norm(t: torch.Tensor) -> torch.Tensor:
    if t.numel() == 0:
        return torch.zeros((), dtype=_wide(t.device), device=t.device)
    if not (t.is_floating_point() or t.is_complex()):
        t = t.abs().max() if t.dtype != torch.bool else t.any()
        return t.to(_wide(t.device))
    return torch.linalg.vector_norm(t, ord=math.inf).to(_wide(t.device))


def _group_of(optimizer: torch.optim.Optimizer) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            out.setdefault(id(p), i)
    return out


# ---------------------------------------------------------------------------------------------
# Snapshots and comparisons.


def _max_abs_diff(now: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Largest |now - before| as a float64 0-d tensor on ``before``'s device, in chunks; equal NaNs
    count as unchanged, a new NaN as an infinite change."""
    a = now.detach().reshape(-1)
    b = before.reshape(-1)
    wide64 = _wide(b.device)
    out = torch.zeros((), dtype=wide64, device=b.device)
    for start in range(0, b.numel(), _DIFF_CHUNK):
        ca = a[start : start + _DIFF_CHUNK].to(b.device)
        cb = b[start : start + _DIFF_CHUNK]
        if ca.dtype == torch.bool:
            d = ca.ne(cb)
        elif ca.is_complex():
            d = (ca - cb).abs()
            d.nan_to_num_(nan=math.inf)
        elif ca.is_floating_point():
            # float32 (or wider) differences of the tensor's own values: exact enough, half the memory
            wide = torch.promote_types(ca.dtype, torch.float32)
            d = ca - cb if ca.dtype == wide else ca.to(wide) - cb.to(wide)
            d.abs_()
            d.masked_fill_(ca.isnan() & cb.isnan(), 0.0)
            d.nan_to_num_(nan=math.inf)
        else:
            d = (ca.to(wide64) - cb.to(wide64)).abs_()
        out = torch.maximum(out, d.max().to(wide64))
    return out


def _bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same values and same bits (``-0.0`` differs from ``0.0``), without a temporary of a's size."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() or a.is_complex():
        bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(a.element_size())
        if bits is not None and not a.is_complex():
            return bool(torch.equal(a.view(bits), b.view(bits)))
    return bool(torch.equal(a, b))


def _host_floats(values: list[torch.Tensor]) -> list[float]:
    """0-d tensors to floats with one transfer per device."""
    out = [0.0] * len(values)
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        by_device.setdefault(v.device, []).append(i)
    for idx in by_device.values():
        host = torch.stack([values[i].to(_wide(values[i].device)) for i in idx]).tolist()
        for i, v in zip(idx, host, strict=True):
            out[i] = float(v)
    return out


class _Floats:
    """Collects device scalars now, reads them all after one transfer."""

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []
        self.host: list[float] = []

    def add(self, t: torch.Tensor | None) -> int | None:
        if t is None:
            return None
        self.values.append(t)
        return len(self.values) - 1

    def sync(self) -> None:
        self.host = _host_floats(self.values)

    def get(self, i: int | None) -> float | None:
        return None if i is None else self.host[i]


def _is_norm_with_stats(module: nn.Module | None) -> bool:
    return isinstance(module, _NormBase) and bool(getattr(module, "track_running_stats", False))


# ---------------------------------------------------------------------------------------------
# Restore


@contextmanager
def _restoring_optimizer(optimizer: torch.optim.Optimizer | None) -> Iterator[None]:
    if optimizer is None:
        yield
        return
    state = {
        p: {k: (v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in s.items()}
        for p, s in optimizer.state.items()
    }
    groups = [
        {k: (list(v) if k == "params" else copy.deepcopy(v)) for k, v in g.items()} for g in optimizer.param_groups
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for p in list(optimizer.state):
                if p not in state:
                    del optimizer.state[p]
            for p, saved in state.items():
                live = optimizer.state[p]
                for k in [k for k in live if k not in saved]:
                    del live[k]
                for k, v in saved.items():
                    cur = live.get(k)
                    if isinstance(v, torch.Tensor) and isinstance(cur, torch.Tensor) and cur.shape == v.shape:
                        cur.copy_(v)
                    else:
                        live[k] = v
            del optimizer.param_groups[len(groups) :]
            for g, saved_g in zip(optimizer.param_groups, groups, strict=False):
                g.clear()
                g.update(saved_g)


# ---------------------------------------------------------------------------------------------


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
) -> StepReport:
    """Run ``step()`` once and check every freeze invariant; each violation comes with its cause.

    ``frozen`` defaults to the params with ``requires_grad=False`` and the buffers of modules whose
    own params are all frozen; glob patterns (``"backbone.*"``) choose params and buffers instead.
    ``mode="exact"`` copies the frozen tensors (to ``snapshot_device`` if given) and reports the
    largest change (within ``atol``); ``mode="fingerprint"`` keeps one number per tensor.
    ``restore=True`` puts params, buffers, grads, optimizer state, RNG and modes back afterwards.

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

    inner, wrappers = _unwrap(model)
    if any(t.is_meta for t in inner.parameters()):
        raise TorchscopeError("the model has params on the meta device; load its weights before check_step")
    if any(isinstance(t, nn.parameter.UninitializedParameter) for t in inner.parameters()):
        raise TorchscopeError("the model has uninitialized lazy params; run one forward pass before check_step")
    with ExitStack() as stack:
        if restore:
            stack.enter_context(preserved(inner, params=True))
            stack.enter_context(_restoring_optimizer(optimizer))
        result = _run(inner, step, optimizer, frozen, mode, atol, snap_dev)
    report, checked_trainable = result
    report = StepReport(**{**report.__dict__, "wrappers": wrappers})
    from torchscope._distributed import gather_report, should_gather

    if should_gather(inner, wrappers):
        report = gather_report(report, checked_trainable, inner)
    return report


def _run(
    model: nn.Module,
    step: Callable[[], Any],
    optimizer: torch.optim.Optimizer | None,
    frozen: str | Sequence[str] | None,
    mode: Mode,
    atol: float,
    snap_dev: torch.device | None,
) -> tuple[StepReport, tuple[str, ...]]:
    from torchscope._optaudit import audit

    plan = _plan(model, frozen)
    violations: list[Violation] = list(plan.pre)
    if optimizer is not None:
        violations += audit(plan.params, optimizer, {id(t.tensor) for t in plan.frozen})

    frozen_tensors = plan.frozen + plan.frozen_buffers
    checked = [t for t in frozen_tensors if _local(t.tensor).numel() > 0]
    trainable = [t for t in plan.trainable if _local(t.tensor).numel() > 0]

    # Before: fingerprints of everything under check (bit-level), copies of frozen tensors in exact mode.
    with torch.no_grad():
        fp_before = [fingerprint_tensor(t.tensor) for t in checked]
        tr_before = [fingerprint_tensor(t.tensor) for t in trainable]
        copies: list[torch.Tensor] = []
        if mode == "exact":
            for t in checked:
                loc = _local(t.tensor).detach()
                copies.append(loc.to(snap_dev, copy=True) if snap_dev is not None else loc.clone())
        grad_before = [None if t.tensor.grad is None else _inf_norm(_local(t.tensor.grad)) for t in plan.frozen]
    rg_before = [t.tensor.requires_grad for t in plan.frozen]
    snapshot_bytes = sum(c.nbytes for c in copies) + 8 * (len(fp_before) + len(tr_before) + len(grad_before))

    probe = None
    if optimizer is not None:
        probe = _OptimizerProbe(optimizer, [t.tensor for t in plan.frozen + plan.trainable])
    try:
        step()
    finally:
        if probe is not None:
            probe.remove()

    floats = _Floats()
    with torch.no_grad():
        changed_bits = [
            floats.add(fingerprint_tensor(t.tensor).ne(f).to(_wide(f.device)))
            for t, f in zip(checked, fp_before, strict=True)
        ]
        # Exact mode: the element-wise difference is computed only where the tensor is not bit-equal
        # to its copy. torch.equal on the host is cheap and needs no device sync; elsewhere the diff
        # stays on the device until the one transfer below.
        diffs: list[int | None] = [None] * len(checked)
        if mode == "exact":
            for i, (t, c) in enumerate(zip(checked, copies, strict=True)):
                now = _local(t.tensor).detach()
                if now.device.type == "cpu" and c.device.type == "cpu" and _bit_equal(now, c):
                    diffs[i] = floats.add(torch.zeros((), dtype=torch.float64))
                else:
                    diffs[i] = floats.add(_max_abs_diff(now, c))
        tr_changed = [
            floats.add(fingerprint_tensor(t.tensor).ne(f).to(_wide(f.device)))
            for t, f in zip(trainable, tr_before, strict=True)
        ]
        grad_before_i = [floats.add(g) for g in grad_before]
        grad_after_i = [
            None if t.tensor.grad is None else floats.add(_inf_norm(_local(t.tensor.grad)))
            for t in plan.frozen + plan.trainable
        ]
        finite_i: list[tuple[str, int | None]] = []
        for t in plan.params:
            loc = _local(t.tensor)
            if loc.numel() and loc.is_floating_point():
                finite_i.append((t.name, floats.add(_inf_norm(loc))))
            g = t.tensor.grad
            if g is not None and _local(g).numel() and _local(g).is_floating_point():
                finite_i.append((t.name + ".grad", floats.add(_inf_norm(_local(g)))))
        for b in plan.buffers:
            loc = _local(b.tensor)
            if loc.numel() and loc.is_floating_point():
                finite_i.append((b.name, floats.add(_inf_norm(loc))))
        sight_i: list[tuple[list[int | None], list[int | None]]] = []
        if probe is not None:
            for sight in probe.sights:
                sight_i.append(([floats.add(g) for g in sight.grad], [floats.add(m) for m in sight.momentum]))
    floats.sync()  # the one host transfer (per device) of the whole check

    nfrozen = len(plan.frozen)
    ctx = _Causes(plan, optimizer, probe, floats, sight_i, grad_before_i, grad_after_i, rg_before)
    checked_ids = {id(t.tensor) for t in checked}
    idx = {id(t.tensor): i for i, t in enumerate(checked)}
    frozen_pos = {id(t): j for j, t in enumerate(plan.frozen)}
    for t in plan.frozen + plan.frozen_buffers:
        if id(t.tensor) not in checked_ids:
            continue
        i = idx[id(t.tensor)]
        bits = floats.get(changed_bits[i]) or 0.0
        change = floats.get(diffs[i])
        moved = (change is not None and change > atol) if atol else (bits > 0 or bool(change))
        if not moved:
            continue
        j = frozen_pos.get(id(t))
        if j is not None:
            violations.append(Violation("frozen_param_changed", t.name, change, ctx.frozen_param_cause(j)))
        else:
            violations.append(Violation("frozen_buffer_changed", t.name, change, ctx.buffer_cause(t)))
    tr_pos = {id(t.tensor): k for k, t in enumerate(plan.trainable)}
    for t, flag in zip(trainable, tr_changed, strict=True):
        if not floats.get(flag):
            k = tr_pos[id(t.tensor)]
            violations.append(Violation("trainable_not_updated", t.name, 0.0 if mode == "exact" else None,
                                        ctx.trainable_cause(nfrozen + k)))
    for name, fi in finite_i:
        value = floats.get(fi)
        if value is not None and not math.isfinite(value):
            violations.append(Violation("nonfinite", name, None, _nonfinite_cause(name, plan)))

    checks = [k for k in KINDS if optimizer is not None or k not in OPTIMIZER_KINDS]
    if not plan.pattern_frozen:
        checks.remove("tied_conflict")
    report = StepReport(
        ok=not violations,
        violations=tuple(violations),
        mode=mode,
        checks=tuple(checks),
        params=len(plan.params),
        frozen_params=len(plan.frozen),
        trainable_params=len(plan.trainable),
        buffers=len(plan.buffers),
        frozen_buffers=len(plan.frozen_buffers),
        bytes_checked=sum(_local(t.tensor).nbytes for t in frozen_tensors + plan.trainable),
        snapshot_bytes=snapshot_bytes,
        optimizer_steps=None if probe is None else len(probe.sights),
    )
    return report, tuple(t.name for t in trainable)


def _nonfinite_cause(name: str, plan: _Plan) -> str:
    if name.endswith(".grad"):
        return (
            "its grad has NaN/Inf after the step: the loss or an op in forward produced it (log of 0, "
            "division by 0, fp16 overflow); find it with torch.autograd.detect_anomaly() and clip or scale the loss"
        )
    if any(name in b.names for b in plan.buffers):
        return (
            "this buffer has NaN/Inf after the step (a norm layer's running stats fed NaN/Inf "
            "activations?); fix the inputs or the layer before it"
        )
    return (
        "this param has NaN/Inf after the step: the update blew up (lr too high, a NaN loss, fp16 "
        "overflow); lower the lr, clip grads, or use torch.amp.GradScaler"
    )


_WRITE_HINT = (
    "an in-place op in forward, a .data/.copy_() update, an EMA or load_state_dict inside step()"
)


@dataclass
class _Causes:
    plan: _Plan
    optimizer: torch.optim.Optimizer | None
    probe: _OptimizerProbe | None
    floats: _Floats
    sights: list[tuple[list[int | None], list[int | None]]]
    grad_before: list[int | None]
    grad_after: list[int | None]
    rg_before: list[bool]

    def _alias(self, t: _Tensor) -> str:
        return f" (it is also '{t.names[1]}')" if len(t.names) > 1 else ""

    def _at_step(self, j: int) -> tuple[list[float | None], list[float | None]]:
        grads = [self.floats.get(g[j]) for g, _ in self.sights]
        moms = [self.floats.get(m[j]) for _, m in self.sights]
        return grads, moms

    def frozen_param_cause(self, j: int) -> str:
        t = self.plan.frozen[j]
        p = t.tensor
        alias = self._alias(t)
        if self.rg_before[j]:
            return (
                f"it has requires_grad=True{alias}, so backward gives it a grad and the optimizer updates it; "
                f"it is not frozen at all: call torchscope.freeze(model, '{t.name}') or p.requires_grad_(False)"
            )
        if self.optimizer is None:
            before = self.floats.get(self.grad_before[j])
            after = self.floats.get(self.grad_after[j])
            if before:
                return (
                    f"its .grad from before the freeze was still set (max |grad| {before:.3g}){alias}, so an "
                    "optimizer step applied it; set p.grad = None after freezing (pass optimizer= for a precise cause)"
                )
            if after is not None:
                return (
                    f"its grad is zero rather than None{alias}, so weight decay or momentum in the optimizer moves "
                    "it; use optimizer.zero_grad(set_to_none=True) and build the optimizer from trainable params only"
                )
            return (
                f"it changed with no grad to apply{alias}, so something other than an optimizer wrote to it "
                f"({_WRITE_HINT}); pass optimizer= to rule the optimizer out"
            )
        group = _group_of(self.optimizer).get(id(p))
        if group is None:
            return (
                f"it changed although no optimizer holds it{alias}, so something else wrote to it ({_WRITE_HINT}); "
                "find that write and skip frozen params there"
            )
        if not self.sights:
            return f"it changed but optimizer.step() never ran in step(){alias}, so something else wrote to it ({_WRITE_HINT})"
        grads, moms = self._at_step(j)
        nonzero = [g for g in grads if g]
        if nonzero:
            return (
                f"its .grad was still set from before the freeze (max |grad| {max(nonzero):.3g} at optimizer.step())"
                f"{alias}, and the optimizer applied it; clear it after freezing with p.grad = None "
                "(model.zero_grad(set_to_none=True))"
            )
        if any(g is not None for g in grads):
            g = self.optimizer.param_groups[group]
            reasons = []
            if g.get("weight_decay", 0):
                reasons.append(f"weight_decay={g['weight_decay']}")
            if any(m for m in moms):
                reasons.append("momentum state from before the freeze")
            what = " and ".join(reasons) if reasons else "its state"
            fix = "use optimizer.zero_grad(set_to_none=True) (the default)"
            fix += (
                ", and rebuild the optimizer after freezing" if any(m for m in moms)
                else ", and build the optimizer from trainable params only"
            )
            return f"its grad was zero rather than None at optimizer.step(){alias}, so {what} moved it; {fix}"
        return (
            f"it had no grad at optimizer.step(), so the optimizer skipped it{alias}; something else wrote to it "
            f"({_WRITE_HINT})"
        )

    def buffer_cause(self, t: _Tensor) -> str:
        module = t.module
        kind = type(module).__name__
        if _is_norm_with_stats(module):
            return (
                f"its {kind} module ran in train mode during step(), so its running stats moved; call .eval() "
                "on the frozen norm layers after every model.train(), or replace them with "
                "torchvision.ops.FrozenBatchNorm2d"
            )
        return (
            f"a buffer of {kind} '{t.module_name}' was written during step() ({_WRITE_HINT}); "
            "find that write, or do not expect this buffer frozen"
        )

    def trainable_cause(self, j: int) -> str:
        t = (self.plan.frozen + self.plan.trainable)[j]
        p = t.tensor
        grads_after = self.floats.get(self.grad_after[j])
        if self.optimizer is not None:
            group = _group_of(self.optimizer).get(id(p))
            if group is None:
                return (
                    "it requires grad but is in no optimizer param group, so nothing updates it; pass it to the "
                    "optimizer (build the optimizer after replace_head/unfreeze, or add_param_group)"
                )
            if not self.sights:
                return (
                    "optimizer.step() never ran during step() (torch.amp.GradScaler skips it when grads are "
                    "inf/NaN); call it, or check the scaler"
                )
            lr = self.optimizer.param_groups[group].get("lr")
            if isinstance(lr, int | float | torch.Tensor) and float(lr) == 0:
                return (
                    f"its param group {group} has lr=0 (a warm-up scheduler at step 0?), so the update is zero; "
                    "give the group a positive lr"
                )
            grads, _ = self._at_step(j)
        else:
            grads = [grads_after]
        # Without an optimizer the grads are only seen after step(), which may have cleared them.
        seen = "" if self.optimizer is not None else " (seen after step(); pass optimizer= to see it at optimizer.step())"
        if all(g is None for g in grads):
            return (
                "it got no grad: it is not on the path from the loss (an unused branch, e.g. an inception aux "
                f"head, or an output the loss ignores); use it in the loss, or freeze it{seen}"
            )
        if not any(g for g in grads):
            return (
                "its grad was all zero (the loss does not depend on it here: dead ReLUs, a zero-initialised "
                f"layer after it, a masked output), so there was nothing to apply{seen}"
            )
        return (
            "it had a nonzero grad but did not change: the update is below its dtype's precision (lr too "
            f"small?) or no optimizer stepped it{seen}"
        )


# ---------------------------------------------------------------------------------------------
# The reference fine-tuning step behind `torchscope check-freeze`.

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")


def expected_frozen_names(
    model: nn.Module,
    *,
    freeze: Sequence[str] = (),
    unfreeze: Sequence[str] = (),
    freeze_backbone: bool = False,
) -> list[str] | None:
    """The param and buffer names the freeze options ask to freeze (None when no option was given).

    Names, not tensors: a tied tensor frozen under one name and expected to train under another
    shows up as a ``tied_conflict`` when these names are passed as ``check_step(frozen=...)``.
    """
    if not (freeze or freeze_backbone):
        return None
    params, buffers = _collect(model)
    names = [n for t in params for n in t.names] + [n for b in buffers for n in b.names]
    selected: set[str] = set()
    if freeze_backbone:
        from torchscope._freeze import find_head

        head = find_head(model)
        selected |= {n for n in names if not (n == head or n.startswith(head + "."))}
    if freeze:
        selected |= _select(names, list(freeze))
    if unfreeze:
        selected -= _select(names, list(unfreeze))
    return [n for n in names if n in selected]


def _output_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _output_tensors(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in _output_tensors(v)]
    logits = getattr(out, "logits", None)
    return [logits] if isinstance(logits, torch.Tensor) else []


def synthetic_loss(out: Any, generator: torch.Generator) -> torch.Tensor | None:
    """Cross-entropy of every (N, C, ...) float output against random labels; None if nothing needs grad."""
    losses = []
    for t in _output_tensors(out):
        if not (t.is_floating_point() and t.requires_grad):
            continue
        if t.dim() >= 2:
            labels = torch.randint(0, t.shape[1], (t.shape[0], *t.shape[2:]), generator=generator)
            losses.append(nn.functional.cross_entropy(t.float(), labels.to(t.device)))
        else:
            losses.append(t.float().mean())
    return torch.stack(losses).sum() if losses else None


def check_freeze(
    model: nn.Module,
    *,
    input_size: Sequence[int],
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    steps: int = 1,
    train_bn: bool = True,
    frozen: str | Sequence[str] | None = None,
    mode: Mode = "exact",
    seed: int = 0,
) -> StepReport:
    """Run a reference fine-tuning step on a *copy* of ``model`` and check it with :func:`check_step`.

    Synthetic inputs of ``input_size``, cross-entropy against random labels, an optimizer over the
    trainable params, ``steps`` steps, ``model.train()`` before each; ``train_bn=False`` puts the
    frozen norm layers back in eval mode (the fix for moving running stats). ``model`` is not touched.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    >>> net[:2].requires_grad_(False)  # doctest: +ELLIPSIS
    Sequential(...)
    >>> [v.name for v in check_freeze(net, input_size=(8, 4)).violations]
    ['1.running_mean', '1.running_var', '1.num_batches_tracked']
    >>> check_freeze(net, input_size=(8, 4), train_bn=False).ok
    True
    """
    if optimizer not in OPTIMIZERS:
        raise TorchscopeError(f"optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TorchscopeError(f"steps={steps!r} must be an integer >= 1")
    for label, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not (math.isfinite(value) and value >= 0):
            raise TorchscopeError(f"{label}={value} must be a finite number >= 0")
    size = tuple(input_size)
    if not size or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in size):
        raise TorchscopeError(f"input_size={size!r} must be positive integers, e.g. (2, 3, 224, 224)")
    net = copy.deepcopy(model)
    inner, _ = _unwrap(net)
    device = next((t.device for t in [*inner.parameters(), *inner.buffers()]), torch.device("cpu"))
    dtype = next((p.dtype for p in inner.parameters() if p.is_floating_point()), torch.float32)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(size, generator=gen).to(device=device, dtype=dtype)  # a half model gets half inputs
    trainable = [p for p in inner.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer | None = None
    if trainable:
        if optimizer == "sgd":
            opt = torch.optim.SGD(trainable, lr=lr, momentum=momentum, weight_decay=weight_decay)
        elif optimizer == "adam":
            opt = torch.optim.Adam(trainable, lr=lr, betas=(momentum or 0.9, 0.999), weight_decay=weight_decay)
        else:
            opt = torch.optim.AdamW(trainable, lr=lr, betas=(momentum or 0.9, 0.999), weight_decay=weight_decay)
    module_frozen = _module_frozen(inner)
    frozen_norms = [m for name, m in inner.named_modules() if _is_norm_with_stats(m) and module_frozen.get(name)]

    def step() -> None:
        for _ in range(steps):
            net.train()
            if not train_bn:
                for m in frozen_norms:
                    m.eval()
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            from torchscope.errors import ForwardError

            try:
                out = net(x)
            except Exception as exc:
                raise ForwardError(
                    f"forward pass on an input of size {tuple(x.shape)} failed: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}; pass a fitting --input-size"
                ) from None
            loss = synthetic_loss(out, gen)
            if loss is not None:
                loss.backward()
            if opt is not None:
                opt.step()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return check_step(net, step, optimizer=opt, frozen=frozen, mode=mode)
