"""param_stats() and update_ratio(): per-parameter statistics with foreach kernels and one transfer.

Norms of all parameters (and of their grads) come from ``torch._foreach_norm``; the other
statistics are reduced per tensor on its device; everything is stacked and brought to the host with
one ``.tolist()`` per device. Tied parameters appear once, with their other names as aliases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope._record import tensor_stats
from torchscope._result import Record, Result
from torchscope.errors import SpecError

# "unknown": a grad exists but has no values to reduce (meta device, sparse)
GRAD_STATES = ("none", "zero", "nonfinite", "ok", "unknown")


@dataclass(frozen=True)
class ParamRow(Record):
    """One parameter tensor (tied parameters once, ``aliases`` naming the other names)."""

    name: str
    aliases: tuple[str, ...]
    shape: tuple[int, ...]
    numel: int
    dtype: str
    device: str
    requires_grad: bool
    norm: float | None  # None on the meta device (no values)
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    zero_fraction: float | None
    nan_count: int
    inf_count: int
    grad: str  # one of GRAD_STATES: "none" (no .grad), "zero" (all zeros), "nonfinite", "ok", "unknown"
    grad_norm: float | None
    grad_ratio: float | None  # grad norm / param norm


@dataclass(frozen=True, repr=False)
class ParamStats(Result):
    """What :func:`param_stats` found; plain data."""

    rows: tuple[ParamRow, ...]
    total: int
    trainable: int
    frozen: int
    norm: float | None  # global 2-norm of all parameters
    grad_norm: float | None  # global 2-norm of all grads (None when no grad exists)
    flags: tuple[str, ...]
    nothing_checked: str = ""  # why no parameter had values to check, when none had

    SCHEMA = "torchscope.stats/1"
    DERIVED = ("status", "checked")

    @property
    def checked(self) -> int:
        """Parameter tensors whose values were looked at (one on the meta device has none)."""
        return sum(r.norm is not None for r in self.rows)

    @property
    def status(self) -> str:
        """``"not checked"`` (no parameter had values), ``"flagged"`` or ``"ok"``."""
        if self.checked == 0:
            return "not checked"
        return "flagged" if self.flags else "ok"

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per parameter tensor: what :meth:`to_dataframe` holds."""
        return [r.to_dict() for r in self.rows]


def _unique_params(model: nn.Module) -> list[tuple[str, tuple[str, ...], nn.Parameter]]:
    names: dict[int, list[str]] = {}
    params: dict[int, nn.Parameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
        params[id(p)] = p
    return [(ns[0], tuple(ns[1:]), params[i]) for i, ns in names.items()]


def _grad_state(norm: float | None, has_grad: bool) -> str:
    if not has_grad or norm is None:
        return "none"
    if not math.isfinite(norm):
        return "nonfinite"
    return "zero" if norm == 0 else "ok"


def param_stats(model: nn.Module) -> ParamStats:
    """Shape, norm, mean, std, min, max, zeros, NaN/Inf of every parameter, and of its grad if any.

    Args:
        model: The model; nothing on it changes.

    Returns:
        The ``ParamStats``: one row per unique parameter (tied ones once, with their aliases).

    Raises:
        SpecError: ``model`` is not an ``nn.Module``.

    >>> m = nn.Linear(3, 2)
    >>> m(torch.randn(4, 3)).sum().backward()
    >>> row = param_stats(m).rows[0]
    >>> row.name, row.grad, row.numel
    ('weight', 'ok', 6)
    """
    if not isinstance(model, nn.Module):
        raise SpecError(f"param_stats() needs an nn.Module, got {type(model).__name__}")
    entries = _unique_params(model)
    values: dict[int, list[float]] = {}
    grad_norms: dict[int, float] = {}
    by_device: dict[torch.device, list[int]] = {}
    for i, (_, _, p) in enumerate(entries):
        if not p.is_meta:
            by_device.setdefault(p.device, []).append(i)
    with torch.no_grad():
        for idx in by_device.values():
            params = [entries[i][2].detach() for i in idx]
            norms = torch._foreach_norm(params)
            grads_here = [(i, g) for i in idx if (g := _dense_grad(entries[i][2])) is not None]
            with_grad = [i for i, _ in grads_here]
            gnorms = torch._foreach_norm([g.detach() for _, g in grads_here]) if grads_here else []
            dtype = torch.float32 if params[0].device.type == "mps" else torch.float64
            rows = [
                torch.cat([n.reshape(1).to(dtype), tensor_stats(p).to(dtype)])
                for n, p in zip(norms, params, strict=True)
            ]
            grads = (
                torch.stack([g.to(dtype) for g in gnorms])
                if with_grad
                else torch.zeros(0, dtype=dtype, device=params[0].device)
            )
            flat = torch.cat([torch.stack(rows).reshape(-1), grads]).tolist()  # the one transfer per device
            for k, i in enumerate(idx):
                values[i] = flat[k * 9 : (k + 1) * 9]
            for k, i in enumerate(with_grad):
                grad_norms[i] = flat[len(idx) * 9 + k]
    rows_out = []
    for i, (name, aliases, p) in enumerate(entries):
        v = values.get(i)
        gn = grad_norms.get(i)
        has_grad = p.grad is not None
        ratio = None
        if v is not None and gn is not None and v[0] > 0:
            ratio = gn / v[0]
        rows_out.append(
            ParamRow(
                name=name,
                aliases=aliases,
                shape=tuple(p.shape),
                numel=p.numel(),
                dtype=str(p.dtype).removeprefix("torch."),
                device=str(p.device),
                requires_grad=p.requires_grad,
                norm=None if v is None else v[0],
                mean=None if v is None else v[1],
                std=None if v is None else v[2],
                min=None if v is None else v[3],
                max=None if v is None else v[4],
                zero_fraction=None if v is None else v[6],
                nan_count=0 if v is None else int(v[7]),
                inf_count=0 if v is None else int(v[8]),
                grad=_grad_state(gn, has_grad) if not (has_grad and gn is None) else "unknown",
                grad_norm=gn,
                grad_ratio=ratio,
            )
        )
    flags: list[str] = []
    for r in rows_out:
        if r.nan_count or r.inf_count:
            flags.append(f"{r.name}: {r.nan_count} NaN, {r.inf_count} Inf values")
        if r.grad == "nonfinite":
            flags.append(f"{r.name}: gradient is not finite")
    known = [r.norm for r in rows_out if r.norm is not None]
    grads_known = [r.grad_norm for r in rows_out if r.grad_norm is not None]
    return ParamStats(
        rows=tuple(rows_out),
        total=sum(r.numel for r in rows_out),
        trainable=sum(r.numel for r in rows_out if r.requires_grad),
        frozen=sum(r.numel for r in rows_out if not r.requires_grad),
        norm=math.sqrt(sum(n * n for n in known)) if known else None,
        grad_norm=math.sqrt(sum(n * n for n in grads_known)) if grads_known else None,
        flags=tuple(flags),
        nothing_checked="" if known else _why_unchecked(rows_out),
    )


def _why_unchecked(rows: list[ParamRow]) -> str:
    if not rows:
        return "the model has no parameters"
    return "the parameters are on the meta device (shapes, no values); load them on cpu (--device cpu)"


def _dense_grad(p: torch.Tensor) -> torch.Tensor | None:
    g = p.grad
    if g is None or g.is_sparse or g.is_meta:
        return None
    return g


def update_ratio(
    before: Mapping[str, torch.Tensor], after: nn.Module | Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """``||after - before|| / ||before||`` per parameter: the size of an optimizer step. ~1e-3 is healthy.

    ``before`` maps names to tensors saved before the step (``{n: p.detach().clone() for n, p in
    model.named_parameters()}``); ``after`` is the model after the step, or another such mapping.
    Names missing on either side are skipped. Two ``_foreach`` kernels, one host transfer.

    Args:
        before: Parameter name -> tensor, saved before the step.
        after: The model after the step, or another such mapping.

    Returns:
        Parameter name -> ``||after - before|| / ||before||``.

    Raises:
        SpecError: ``before`` and ``after`` have no parameter name in common.

    >>> m = nn.Linear(2, 2)
    >>> before = {n: p.detach().clone() for n, p in m.named_parameters()}
    >>> with torch.no_grad():
    ...     _ = m.weight.mul_(1.001)
    >>> round(update_ratio(before, m)["weight"], 6), update_ratio(before, m)["bias"]
    (0.001, 0.0)
    """
    current = dict(after.named_parameters()) if isinstance(after, nn.Module) else dict(after)
    names = [
        n
        for n in before
        if n in current
        and before[n].is_floating_point()
        and not before[n].is_meta
        and tuple(before[n].shape) == tuple(current[n].shape)
    ]
    if not names:
        raise SpecError(
            "update_ratio: no parameter names in common; pass {name: tensor} saved before the step"
        )
    out: dict[str, float] = {}
    by_device: dict[torch.device, list[str]] = {}
    for n in names:
        by_device.setdefault(current[n].device, []).append(n)
    with torch.no_grad():
        for dev, group in by_device.items():
            old = [before[n].detach().to(dev) for n in group]
            new = [current[n].detach() for n in group]
            diffs = torch._foreach_sub(new, old)
            norms = torch._foreach_norm(diffs) + torch._foreach_norm(old)
            values = torch.stack([t.float() for t in norms]).tolist()  # one transfer
            for k, n in enumerate(group):
                d, base = values[k], values[len(group) + k]
                out[n] = d / base if base > 0 else (0.0 if d == 0 else math.inf)
    return out
