"""record(): forward hooks that collect activation statistics per module call.

Statistics are reduced on the tensor's own device inside the hook and kept there; once per forward
pass (in a hook on the model itself) they are stacked and brought to the host with one ``.tolist()``.
Nothing calls ``.item()`` per module. Hooks (and the tensor hooks for output gradients) are removed
in ``finally``, also when forward raises.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope._compiled import eager
from torchscope._fused import fused_stats
from torchscope._inputs import flatten_outputs
from torchscope._patterns import match_names
from torchscope._recursion import WALK_PER_LEVEL, check_depth, headroom
from torchscope._result import Record, Result
from torchscope.errors import SpecError

# Modules whose output is exactly zero for negative inputs: >= DEAD_FRACTION zeros means dead units.
RELU_FAMILY: frozenset[str] = frozenset({"ReLU", "ReLU6", "Threshold", "Hardtanh"})
DEAD_FRACTION = 0.9
# A call whose std is this many times above (below) the median std of its forward pass explodes
# (vanishes). The median, not the first layer, so one odd layer cannot shift the baseline.
STD_RATIO = 100.0

STAT_FIELDS: tuple[str, ...] = (
    "mean",
    "std",
    "min",
    "max",
    "absmax",
    "zero_fraction",
    "nan_count",
    "inf_count",
)


_ONES: dict[tuple[int, torch.dtype], torch.Tensor] = {}


def _fast_sum(x: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
    """Sum of a CPU tensor through a BLAS matrix-vector product with ones.

    About twice as fast as ``Tensor.sum`` on the CPU (whose cascade summation is not vectorised as
    well); float32/float64 contiguous tensors only, else ``sum``.
    """
    if x.dtype not in (torch.float32, torch.float64) or not x.is_contiguous() or x.ndim == 0:
        return x.sum(dtype=acc)
    cols = x.shape[-1] * (x.shape[-2] if x.ndim >= 2 else 1)
    if cols == 0:
        return x.sum(dtype=acc)
    key = (cols, x.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = torch.ones(cols, dtype=x.dtype)
    return (x.view(-1, cols) @ ones).sum(dtype=acc)


_SIGN_CHUNK = 1 << 20
_SIGN_BUF: dict[torch.dtype, torch.Tensor] = {}


def _blas_ready(x: torch.Tensor) -> bool:
    return x.dtype in (torch.float32, torch.float64) and x.is_contiguous() and x.ndim > 0


def _fast_sumsq(x: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
    """Sum of squares through one BLAS dot product (half the time of ``vector_norm`` on the CPU)."""
    if not _blas_ready(x):
        return torch.linalg.vector_norm(x, dtype=acc).square()
    flat = x.view(-1)
    return torch.dot(flat, flat).to(acc)


def _fast_count_nonzero(x: torch.Tensor) -> torch.Tensor:
    """Non-zero count of a finite CPU tensor, as float64: sign() into a reused buffer, then a dot.

    ``torch.count_nonzero`` is not vectorised on the CPU: about 8x slower than this on a
    6.4M-element activation, and the largest single cost of ``record()`` before. ``sign`` maps
    every non-zero to +-1 and both zeros to 0, so the dot of the signs with themselves counts the
    non-zeros exactly (each chunk's count is far below float32's 2**24 exact-integer limit). The
    caller guarantees there is no NaN (whose sign is NaN).
    """
    if not _blas_ready(x):
        return torch.count_nonzero(x).to(torch.float64)
    buf = _SIGN_BUF.get(x.dtype)
    if buf is None:
        buf = _SIGN_BUF[x.dtype] = torch.empty(_SIGN_CHUNK, dtype=x.dtype)
    total = torch.zeros((), dtype=torch.float64)
    for part in x.view(-1).split(_SIGN_CHUNK):
        b = buf[: part.numel()]
        torch.sign(part, out=b)
        total += torch.dot(b, b)
    return total


def tensor_stats(t: torch.Tensor) -> torch.Tensor:
    """``[mean, std, min, max, absmax, zero_fraction, nan_count, inf_count]`` of ``t``, on its device.

    On the CPU (where the statistics compete with the model for the same cores) a dense
    float32/bfloat16/float16 tensor is read once by the fused kernel of ``_fused.py`` when it could
    be built. Otherwise four torch reductions that allocate nothing the size of ``t`` (a fresh
    large buffer costs more in page faults than the pass itself): a BLAS sum, a BLAS sum of
    squares, aminmax, and a non-zero count (sign into a reused buffer, then a dot). Both take std
    from the first two moments, recomputed exactly when they would cancel. On an accelerator:
    std_mean, aminmax, count_nonzero and the NaN/Inf counts, with no host sync.

    >>> [round(v, 4) for v in tensor_stats(torch.tensor([0.0, 2.0, -2.0, 4.0])).tolist()]
    [1.0, 2.582, -2.0, 4.0, 4.0, 0.25, 0.0, 0.0]
    """
    x = t.detach()
    if not x.is_floating_point():
        x = x.float()
    n = x.numel()
    out_dtype = torch.float32 if x.device.type == "mps" else torch.float64
    if n == 0:
        return torch.full((8,), math.nan, dtype=out_dtype, device=x.device)
    if x.device.type == "cpu":
        fused = fused_stats(x)
        if fused is not None:
            return fused
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    mn, mx = torch.aminmax(x)
    mn, mx = mn.to(out_dtype), mx.to(out_dtype)
    if x.device.type == "cpu":
        # On the CPU reading a scalar is no device sync, so this path may branch on values: a
        # finite sum and norm prove there is no NaN or Inf (skipping those two counts), and only a
        # tensor whose variance is small next to its mean (where the moment formula cancels) pays
        # for an exact std.
        s1 = _fast_sum(x, acc).to(out_dtype)
        sumsq = _fast_sumsq(x, acc).to(out_dtype)
        if math.isfinite(float(s1)) and not math.isfinite(float(sumsq)):
            # squares overflowed float32 (values ~1e19 and up): a float64 norm does not
            sumsq = torch.linalg.vector_norm(x, dtype=torch.float64).to(out_dtype).square()
        mean = s1 / n
        var = (sumsq / n - mean * mean).clamp_min(0) * (n / max(n - 1, 1))
        finite = math.isfinite(float(s1)) and math.isfinite(float(sumsq))
        if finite and float(var) <= 1e-3 * float(mean) ** 2:
            var = torch.var(x.to(acc)).to(out_dtype) if n > 1 else torch.zeros((), dtype=out_dtype)
        std = var.sqrt()
        nonzero = (_fast_count_nonzero(x) if finite else torch.count_nonzero(x)).to(out_dtype)
        if finite:
            nan = inf = torch.zeros((), dtype=out_dtype)
        else:
            nan = torch.isnan(x).count_nonzero().to(out_dtype)
            inf = torch.isinf(x).count_nonzero().to(out_dtype)
    else:
        # on an accelerator: no branch on values (that would sync); every statistic, always
        xs = x.to(acc)
        if n > 1:
            std, mean = torch.std_mean(xs)
        else:
            std, mean = torch.zeros((), dtype=acc, device=x.device), xs.reshape(())
        std, mean = std.to(out_dtype), mean.to(out_dtype)
        nonzero = torch.count_nonzero(x).to(out_dtype)
        nan = torch.isnan(x).count_nonzero().to(out_dtype)
        inf = torch.isinf(x).count_nonzero().to(out_dtype)
    absmax = torch.maximum(mn.abs(), mx.abs())
    return torch.stack([mean, std, mn, mx, absmax, (n - nonzero) / n, nan, inf])


@dataclass(frozen=True)
class TensorStats(Record):
    """Statistics of one tensor (an activation or its gradient)."""

    mean: float
    std: float
    min: float
    max: float
    absmax: float
    zero_fraction: float
    nan_count: int
    inf_count: int

    @classmethod
    def from_list(cls, values: Sequence[float]) -> TensorStats:
        v = list(values)
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], _count(v[6]), _count(v[7]))



def _count(v: float) -> int:
    return int(v) if math.isfinite(v) else 0


@dataclass(frozen=True)
class ActivationCall(Record):
    """One output tensor of one module call in one forward pass."""

    forward: int
    module: str
    type: str
    call: int  # 0 for the module's first call in this forward pass, 1 for the second (shared)...
    output: str  # "output", "output[0]", "output.logits"...
    shape: tuple[int, ...]
    dtype: str
    stats: TensorStats | None  # None for non-floating outputs
    grad: TensorStats | None = None
    time_ms: float | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Flag(Record):
    """A problem found in the statistics: nan, inf, dead, exploding, vanishing, grad_nan, grad_inf."""

    kind: str
    module: str
    forward: int
    call: int
    detail: str


@dataclass(frozen=True, repr=False)
class ActivationReport(Result):
    """Everything :func:`record` saw, in call order; plain data."""

    calls: tuple[ActivationCall, ...]
    forwards: int
    modules: tuple[str, ...]
    flags: tuple[Flag, ...]
    timing: bool = False
    grads: bool = False
    nothing_checked: str = ""  # why no output had values to check, when none had

    SCHEMA = "torchscope.activations/1"
    DERIVED = ("status", "checked")

    def __post_init__(self) -> None:
        # one value for the field and its JSON: the reason exactly when nothing was checked
        object.__setattr__(self, "nothing_checked", self.why_unchecked() if self.checked == 0 else "")

    @property
    def checked(self) -> int:
        """Outputs whose values were looked at (an integer or meta output has none)."""
        return sum(c.stats is not None for c in self.calls)

    @property
    def status(self) -> str:
        """``"not checked"`` (no output had values), ``"flagged"`` or ``"ok"``."""
        if self.checked == 0:
            return "not checked"
        return "flagged" if self.flags else "ok"

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per recorded output, statistics flattened: what :meth:`to_dataframe` holds."""
        rows = []
        for c in self.calls:
            row: dict[str, Any] = {"forward": c.forward, "module": c.module, "type": c.type, "call": c.call,
                                   "output": c.output, "shape": list(c.shape), "dtype": c.dtype}
            for f in STAT_FIELDS:
                row[f] = None if c.stats is None else getattr(c.stats, f)
            row["flags"] = ",".join(c.flags)
            rows.append(row)
        return rows

    def why_unchecked(self) -> str:
        """The reason no output was checked (``nothing_checked``, or one read from the calls)."""
        if self.nothing_checked:
            return self.nothing_checked
        return "no recorded output had values" if self.calls else "no recorded module ran"


def _why_unchecked(rows: list[_Row], forwards: int, hooked: int, returned: str) -> str:
    """Why none of ``rows`` has statistics: what a user can do about it, in one clause."""
    if forwards == 0:
        return "no forward pass ran inside record()"
    if not rows:
        if returned:
            return (
                f"the model's forward returned a {returned}, whose code runs only when it is iterated, "
                "so no module ran; return a tensor (or a tuple, list or dict of them)"
            )
        if hooked == 0:
            return "the model has no submodules to record"
        return "none of the recorded modules ran in the forward pass"
    meta = sum(r.meta for r in rows)
    if meta == len(rows):
        return "the outputs are on the meta device (shapes, no values); run on cpu or cuda (--device cpu)"
    parts = [f"{meta} on the meta device"] if meta else []
    parts.append(f"{len(rows) - meta} not floating point")
    return f"no recorded output has values to check ({', '.join(parts)})"


@dataclass
class _Row:
    forward: int
    module: str
    type: str
    call: int
    output: str
    shape: tuple[int, ...]
    dtype: str
    stats: list[float] | None = None
    grad: list[float] | None = None
    time_ms: float | None = None
    meta: bool = False


class Recorder:
    """Collects statistics while inside :func:`record`; :meth:`report` turns them into plain data."""

    def __init__(self, model: nn.Module, names: dict[int, str], *, grads: bool, timing: bool) -> None:
        self._model = model
        self._names = names
        self.grads = grads
        self.timing = timing
        self._rows: list[_Row] = []
        self._forward = -1
        self._calls: dict[int, int] = {}
        # rows waiting for their device statistics: (row, stats tensor)
        self._pending: list[tuple[_Row, torch.Tensor]] = []
        self._pending_grads: list[tuple[_Row, torch.Tensor]] = []
        self._starts: dict[int, list[float]] = {}
        self._tensor_handles: list[Any] = []
        # the last tensor seen, so a container whose output is its last child's output (same object,
        # same version) reuses that child's statistics instead of reducing the tensor again
        self._last: tuple[torch.Tensor, int, torch.Tensor] | None = None
        self._returned = ""  # the type of a lazy output (a generator), whose code never ran

    # -- hooks ---------------------------------------------------------------------------------
    def _root_pre(self, module: nn.Module, args: Any) -> None:
        self._flush()
        self._forward += 1
        self._calls.clear()

    def _root_post(self, module: nn.Module, args: Any, output: Any) -> None:
        self._flush()
        self._returned = type(output).__name__ if isinstance(output, Iterator) else ""

    def _pre(self, module: nn.Module, args: Any) -> None:
        if self.timing:
            _sync(module)
            self._starts.setdefault(id(module), []).append(time.perf_counter())

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        elapsed = None
        if self.timing:
            _sync(module)
            starts = self._starts.get(id(module))
            if starts:
                elapsed = (time.perf_counter() - starts.pop()) * 1e3
        if self._forward < 0:  # a submodule called on its own, outside the model's forward
            self._forward = 0
        n = self._calls.get(id(module), 0)
        self._calls[id(module)] = n + 1
        name = self._names[id(module)]
        with torch.no_grad():
            for path, t in flatten_outputs(output):
                row = _Row(
                    self._forward,
                    name,
                    type(module).__name__,
                    n,
                    path,
                    tuple(t.shape),
                    str(t.dtype).removeprefix("torch."),
                    time_ms=elapsed,
                    meta=t.is_meta,
                )
                self._rows.append(row)
                if not t.is_floating_point() or t.is_meta:  # no statistics for ints, bools, shapes only
                    continue
                self._pending.append((row, self._stats_of(t)))
                if self.grads and t.requires_grad:
                    self._tensor_handles.append(t.register_hook(self._grad_hook(row)))

    def _stats_of(self, t: torch.Tensor) -> torch.Tensor:
        last = self._last
        if last is not None and last[0] is t and last[1] == t._version:
            return last[2]
        stats = tensor_stats(t)
        self._last = (t, t._version, stats)
        return stats

    def _grad_hook(self, row: _Row) -> Any:
        def hook(grad: torch.Tensor) -> None:
            with torch.no_grad():
                self._pending_grads.append((row, tensor_stats(grad)))

        return hook

    # -- host transfer -------------------------------------------------------------------------
    def _flush(self) -> None:
        self._last = None
        for pending, attr in ((self._pending, "stats"), (self._pending_grads, "grad")):
            if not pending:
                continue
            by_device: dict[torch.device, list[tuple[_Row, torch.Tensor]]] = {}
            for row, stats in pending:
                by_device.setdefault(stats.device, []).append((row, stats))
            for items in by_device.values():
                values = torch.stack([s for _, s in items]).tolist()  # the one transfer per device
                for (row, _), v in zip(items, values, strict=True):
                    setattr(row, attr, v)
            pending.clear()

    def _close(self) -> None:
        for h in self._tensor_handles:
            h.remove()
        self._tensor_handles.clear()

    def report(self) -> ActivationReport:
        """Plain-data report of every recorded call so far (also after the ``with`` block).

        >>> m = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
        >>> with record(m) as rec:
        ...     _ = m(torch.randn(2, 3))
        >>> [c.module for c in rec.report().calls]
        ['0', '1']
        """
        self._flush()
        calls = []
        for r in self._rows:
            calls.append(
                ActivationCall(
                    r.forward,
                    r.module,
                    r.type,
                    r.call,
                    r.output,
                    r.shape,
                    r.dtype,
                    None if r.stats is None else TensorStats.from_list(r.stats),
                    None if r.grad is None else TensorStats.from_list(r.grad),
                    r.time_ms,
                )
            )
        calls, flags = _flag(calls)
        modules = tuple(dict.fromkeys(self._names.values()))
        unchecked = ""
        if not any(c.stats is not None for c in calls):
            unchecked = _why_unchecked(self._rows, self._forward + 1, len(self._names), self._returned)
        return ActivationReport(
            tuple(calls), self._forward + 1, modules, tuple(flags), self.timing, self.grads, unchecked
        )


def _sync(module: nn.Module) -> None:
    for p in module.parameters(recurse=True):
        if p.device.type == "cuda":
            torch.cuda.synchronize(p.device)
        return


def _flag(calls: list[ActivationCall]) -> tuple[list[ActivationCall], list[Flag]]:
    """Attach flags to calls: NaN/Inf, dead ReLU units, exploding/vanishing std within a forward."""
    medians: dict[int, float] = {}
    by_forward: dict[int, list[float]] = {}
    for c in calls:
        if c.stats is not None and math.isfinite(c.stats.std) and c.stats.std > 0:
            by_forward.setdefault(c.forward, []).append(c.stats.std)
    for fwd, stds in by_forward.items():
        medians[fwd] = statistics.median(stds)
    out: list[ActivationCall] = []
    flags: list[Flag] = []
    for c in calls:
        found: list[tuple[str, str]] = []
        s = c.stats
        if s is not None:
            if s.nan_count:
                found.append(("nan", f"{s.nan_count} NaN values in {c.output}"))
            if s.inf_count:
                found.append(("inf", f"{s.inf_count} Inf values in {c.output}"))
            dead = c.type in RELU_FAMILY and s.zero_fraction >= DEAD_FRACTION
            if dead:
                found.append(("dead", f"{s.zero_fraction:.0%} of outputs are exactly zero"))
            med = medians.get(c.forward)
            if med and math.isfinite(s.std) and len(by_forward.get(c.forward, ())) >= 3:
                if s.std > STD_RATIO * med:
                    found.append(("exploding", f"std {s.std:.3g} is {s.std / med:.0f}x the median {med:.3g}"))
                elif not dead and s.std < med / STD_RATIO:
                    found.append(
                        (
                            "vanishing",
                            f"std {s.std:.3g} is 1/{med / max(s.std, 1e-300):.0f} of the median {med:.3g}",
                        )
                    )
        g = c.grad
        if g is not None:
            if g.nan_count:
                found.append(("grad_nan", f"{g.nan_count} NaN values in the gradient of {c.output}"))
            if g.inf_count:
                found.append(("grad_inf", f"{g.inf_count} Inf values in the gradient of {c.output}"))
        if found:
            c = ActivationCall(**{**c.__dict__, "flags": tuple(k for k, _ in found)})
            flags.extend(Flag(k, c.module, c.forward, c.call, d) for k, d in found)
        out.append(c)
    return out, flags


@contextmanager
def record(
    model: nn.Module,
    modules: str | Sequence[str] | None = None,
    *,
    grads: bool = False,
    timing: bool = False,
) -> Iterator[Recorder]:
    """Record activation statistics of ``modules`` (glob patterns; default: every submodule).

    With ``grads=True`` the gradient of each recorded output is summarised too (run backward inside
    the block); ``timing=True`` adds per-call wall time (synchronising CUDA around each module).
    Hooks are removed on exit, also when forward raises.

    Args:
        model: The model to hook.
        modules: Glob patterns of the modules to record; default every submodule.
        grads: Also summarise the gradient of each recorded output.
        timing: Add per-call wall time (synchronises CUDA around each module).

    Yields:
        The ``Recorder``; ``rec.report()`` gives the ``ActivationReport``.

    Raises:
        SpecError: ``model`` is not an ``nn.Module``, or ``modules`` matches nothing.

    >>> m = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    >>> with record(m, "1") as rec:
    ...     _ = m(torch.randn(8, 4))
    >>> rec.report().calls[0].shape
    (8, 4)
    """
    if not isinstance(model, nn.Module):
        raise SpecError(f"record() needs an nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise SpecError(
            "record() cannot hook a TorchScript module; load the eager model (NAME or file.py:attr)"
        )
    check_depth(model, per_level=WALK_PER_LEVEL)
    all_names: list[tuple[str, nn.Module]] = [
        (n, m) for n, m in model.named_modules(remove_duplicate=False) if n
    ]
    if modules is None:
        chosen = [n for n, _ in all_names]
    else:
        patterns = [modules] if isinstance(modules, str) else list(modules)
        chosen = match_names([n for n, _ in all_names], patterns, what="module")
    lookup = dict(all_names)
    names: dict[int, str] = {}
    for n in chosen:
        names.setdefault(id(lookup[n]), n)
    rec = Recorder(model, names, grads=grads, timing=timing)
    handles: list[Any] = []
    # a model run compiled traces its hooks: ours run eagerly, outside the graph
    root_pre, pre = eager(rec._root_pre), eager(rec._pre)
    post, root_post = eager(rec._post), eager(rec._root_post)
    try:
        handles.append(model.register_forward_pre_hook(root_pre))
        for n in chosen:
            m = lookup[n]
            if names.get(id(m)) != n:
                continue  # the same module under a second name: hooked once
            if timing:
                handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
        # registered last, so it runs after the hooks of a recorded root-level module
        handles.append(model.register_forward_hook(root_post))
        with headroom(model):  # our hooks cost torch a frame per nesting level
            yield rec
    finally:
        for h in handles:
            h.remove()
        rec._close()
        rec._flush()
