"""The comparison numerics: the one definition of "changed" (:func:`max_abs_diff`), inf-norms, and
bringing device scalars to the host in one transfer per device."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["Floats", "bit_equal", "host_floats", "inf_norm", "max_abs_diff", "max_abs_diffs", "wide_float"]

# Elements compared per chunk: the difference of a chunk is the largest temporary (4 MiB for
# float32), whatever the size of the tensor; larger chunks pay less per-op overhead.
DIFF_CHUNK = 1 << 20


def wide_float(device: torch.device) -> torch.dtype:
    """The widest float a device computes in: float64, except on MPS, which has none."""
    return torch.float32 if device.type == "mps" else torch.float64


def inf_norm(t: torch.Tensor) -> torch.Tensor:
    """max |t| as a wide 0-d float tensor on t's device (0 for an empty tensor)."""
    if t.numel() == 0:
        return torch.zeros((), dtype=wide_float(t.device), device=t.device)
    if not (t.is_floating_point() or t.is_complex()):
        t = t.abs().max() if t.dtype != torch.bool else t.any()
        return t.to(wide_float(t.device))
    return torch.linalg.vector_norm(t, ord=math.inf).to(wide_float(t.device))


def _int_abs_diff(a: torch.Tensor, b: torch.Tensor, wide: torch.dtype) -> torch.Tensor:
    """|a - b| of integer tensors, computed in int64 and rounded once to ``wide``.

    Casting each value to double first would round int64 values above 2**53, so 2**53 + 1 and
    2**53 would look equal. The int64 difference is exact unless it overflows (|a - b| >= 2**63),
    where the double difference is accurate to its last bit anyway.
    """
    if a.dtype == torch.uint64:
        # no int64 holds every uint64: compare, then measure where they differ
        differ = a.ne(b)
        d = (a.to(wide) - b.to(wide)).abs_()
        return torch.where(differ, d.clamp_min(1.0), torch.zeros_like(d))
    a64, b64 = a.to(torch.int64), b.to(torch.int64)
    exact = torch.where(a64 >= b64, a64 - b64, b64 - a64)
    # where() rather than a branch on overflow.any(): no device sync per tensor
    return torch.where(exact < 0, (a64.to(wide) - b64.to(wide)).abs(), exact.to(wide))


def max_abs_diff(now: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Largest ``|now - before|`` as a wide 0-d float tensor on ``before``'s device, in chunks.

    The one definition of "changed" that ``check_step`` and ``expect_frozen`` share: equal NaNs
    count as unchanged, a new NaN as an infinite change; complex values compare as complex (the
    imaginary part counts); integers are subtracted as integers (int64 values above 2**53 are not
    rounded first); bools compare by inequality. Zero exactly when ``now`` equals ``before``.

    >>> a = torch.tensor([2**53], dtype=torch.int64)
    >>> float(max_abs_diff(a + 1, a)), float(max_abs_diff(torch.tensor([1 + 2j]), torch.tensor([1 + 0j])))
    (1.0, 2.0)
    """
    a = now.detach().reshape(-1)
    b = before.detach().reshape(-1)
    wide = wide_float(b.device)
    out = torch.zeros((), dtype=wide, device=b.device)
    for start in range(0, b.numel(), DIFF_CHUNK):
        ca = a[start : start + DIFF_CHUNK].to(b.device)
        cb = b[start : start + DIFF_CHUNK]
        if ca.dtype == torch.bool or cb.dtype == torch.bool:
            d = ca.ne(cb)
        elif ca.is_complex() or cb.is_complex():
            d = (ca - cb).abs()
            d.masked_fill_(ca.isnan() & cb.isnan(), 0.0)
            d.nan_to_num_(nan=math.inf)
        elif ca.is_floating_point() or cb.is_floating_point():
            # float32 (or wider) differences of the tensor's own values: a - b of two different
            # floats is never 0 (gradual underflow), and it costs half the memory of float64
            fw = torch.promote_types(torch.promote_types(ca.dtype, cb.dtype), torch.float32)
            d = (ca if ca.dtype == fw else ca.to(fw)) - (cb if cb.dtype == fw else cb.to(fw))
            d.abs_()
            d.masked_fill_(ca.isnan() & cb.isnan(), 0.0)
            d.nan_to_num_(nan=math.inf)
        else:
            d = _int_abs_diff(ca, cb, wide)
        out = torch.maximum(out, d.max().to(wide))
    return out


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same values and same bits (``-0.0`` differs from ``0.0``), without a temporary of a's size."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() or a.is_complex():
        bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(a.element_size())
        if bits is not None and not a.is_complex():
            return bool(torch.equal(a.view(bits), b.view(bits)))
    return bool(torch.equal(a, b))


def host_floats(values: Sequence[torch.Tensor]) -> list[float]:
    """0-d tensors to floats with one transfer per device."""
    out = [0.0] * len(values)
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        by_device.setdefault(v.device, []).append(i)
    for idx in by_device.values():
        host = torch.stack([values[i].to(wide_float(values[i].device)) for i in idx]).tolist()
        for i, v in zip(idx, host, strict=True):
            out[i] = float(v)
    return out


def max_abs_diffs(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """:func:`max_abs_diff` of each ``(now, before)`` pair, brought to the host in one transfer per device.

    >>> max_abs_diffs([(torch.ones(3), torch.zeros(3)), (torch.zeros(0), torch.zeros(0))])
    [1.0, 0.0]
    """
    with torch.no_grad():
        return host_floats([max_abs_diff(now, before) for now, before in pairs])


class Floats:
    """Collects device scalars now, reads them all after one transfer. A value already on the host
    (a fingerprint the CPU kernel computed as a Python int) is added as a float and costs nothing."""

    def __init__(self) -> None:
        self.values: list[torch.Tensor | float] = []
        self.host: list[float] = []

    def add(self, t: torch.Tensor | float | None) -> int | None:
        if t is None:
            return None
        self.values.append(t)
        return len(self.values) - 1

    def sync(self) -> None:
        at = [i for i, v in enumerate(self.values) if isinstance(v, torch.Tensor)]
        host = host_floats([self.values[i] for i in at])  # type: ignore[misc]
        out = [v if isinstance(v, float) else 0.0 for v in self.values]
        for i, v in zip(at, host, strict=True):
            out[i] = v
        self.host = out

    def get(self, i: int | None) -> float | None:
        return None if i is None else self.host[i]
