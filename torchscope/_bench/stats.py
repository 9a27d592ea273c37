"""Pure statistics for ``torchscope bench``: no torch, no clock, no device.

Everything here takes plain numbers (window times, FLOP counts, device names) and returns plain
numbers, so the benchmark's arithmetic is tested exactly, apart from any measurement.

>>> summarize_windows([0.5, 0.4, 0.6], steps=10, images_per_step=16).img_s_median
320.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torchscope.errors import TorchscopeError

# Dense (no 2:4 sparsity) peak tensor throughput in TFLOP/s, from NVIDIA's datasheets.
# The H100/H200 datasheets print the sparse figure for the tensor-core rows (marked "with
# sparsity"); the dense peak is half of it, and that is the number MFU is taken against.
# "fp32" is the plain (non tensor core) FP32 rate; "tf32" the TF32 tensor-core rate that fp32
# matmuls and convolutions use when the TF32 flags allow it.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # NVIDIA A100 Tensor Core GPU datasheet: SXM and PCIe list the same peaks (TF32 156, BF16/FP16 312
    # dense; the sparse figures are 312 / 624).
    "A100 SXM": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "A100 PCIe": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    # NVIDIA H100 Tensor Core GPU datasheet: SXM TF32 989 / BF16 1979 / FP16 1979 (sparse); PCIe
    # TF32 756 / BF16 1513 / FP16 1513 (sparse); NVL TF32 835 / BF16 1671 (sparse).
    "H100 SXM": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5},
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    # NVIDIA H200 datasheet: H200 SXM has the H100 SXM compute peaks (more, faster memory); H200 NVL
    # is the PCIe card, TF32 835 / BF16 1671 / FP16 1671 (sparse).
    "H200 SXM": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},
    "H200 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
}


def datasheet_key(device_name: str) -> str | None:
    """The :data:`PEAK_TFLOPS` row for a CUDA device name, or None for a device not in the table.

    >>> datasheet_key("NVIDIA H100 80GB HBM3"), datasheet_key("NVIDIA A100-PCIE-40GB")
    ('H100 SXM', 'A100 PCIe')
    >>> datasheet_key("NVIDIA H200 NVL"), datasheet_key("cpu") is None
    ('H200 NVL', True)
    """
    name = device_name.upper()
    pcie = "PCIE" in name
    nvl = "NVL" in name
    if "A100" in name:
        return "A100 PCIe" if pcie else "A100 SXM"
    if "H100" in name:
        return "H100 PCIe" if pcie else "H100 NVL" if nvl else "H100 SXM"
    if "H200" in name:
        return "H200 NVL" if nvl or pcie else "H200 SXM"
    return None


def datasheet_peak(device_name: str, dtype: str) -> tuple[str, float] | None:
    """``(table row, dense TFLOP/s)`` for a device name and compute dtype, or None when unknown.

    >>> datasheet_peak("NVIDIA H100 80GB HBM3", "bf16")
    ('H100 SXM', 989.5)
    """
    key = datasheet_key(device_name)
    if key is None:
        return None
    peak = PEAK_TFLOPS[key].get(dtype)
    return None if peak is None else (key, peak)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between ranks (numpy's default).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 90)
    (2.5, 3.7)
    """
    if not values:
        raise TorchscopeError("percentile of no values; run at least one timed window (--windows >= 1)")
    if not 0.0 <= q <= 100.0:
        raise TorchscopeError(f"percentile q={q} must be between 0 and 100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * frac, 12)


def median(values: Sequence[float]) -> float:
    """The median (mean of the two middle values for an even count).

    >>> median([3.0, 1.0, 2.0]), median([4.0, 1.0, 2.0, 3.0])
    (2.0, 2.5)
    """
    return percentile(values, 50.0)


def spread_pct(values: Sequence[float]) -> float:
    """Full range as a percentage of the median: ``(max - min) / median * 100``.

    >>> spread_pct([90.0, 100.0, 110.0])
    20.0
    """
    mid = median(values)
    if mid == 0:
        return 0.0
    return round((max(values) - min(values)) / mid * 100.0, 9)


@dataclass(frozen=True)
class WindowStats:
    """Summary of repeated timed windows of the same steps."""

    img_s_median: float
    img_s_min: float
    img_s_max: float
    spread_pct: float
    step_ms_p50: float
    step_ms_p90: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "img_s_median": self.img_s_median,
            "img_s_min": self.img_s_min,
            "img_s_max": self.img_s_max,
            "spread_pct": self.spread_pct,
            "step_ms_p50": self.step_ms_p50,
            "step_ms_p90": self.step_ms_p90,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowStats:
        return cls(**{k: float(data[k]) for k in cls.__dataclass_fields__})


def summarize_windows(window_s: Sequence[float], *, steps: int, images_per_step: int) -> WindowStats:
    """Throughput and step-time statistics of windows of ``steps`` steps each.

    The device is synchronised only at window edges, so a window's step time is its mean step
    time; p50/p90 are taken over those window means.

    >>> s = summarize_windows([1.0, 2.0], steps=4, images_per_step=8)
    >>> s.img_s_median, s.img_s_min, s.img_s_max, s.step_ms_p50
    (24.0, 16.0, 32.0, 375.0)
    """
    if steps < 1 or images_per_step < 1:
        raise TorchscopeError(f"steps={steps} and images_per_step={images_per_step} must both be >= 1")
    if any(not (t > 0 and math.isfinite(t)) for t in window_s):
        raise TorchscopeError(f"window times {list(window_s)} must all be positive and finite")
    rates = [steps * images_per_step / t for t in window_s]
    step_ms = [t / steps * 1000.0 for t in window_s]
    return WindowStats(
        img_s_median=median(rates),
        img_s_min=min(rates),
        img_s_max=max(rates),
        spread_pct=spread_pct(rates),
        step_ms_p50=percentile(step_ms, 50.0),
        step_ms_p90=percentile(step_ms, 90.0),
    )


def achieved_tflops(flops_per_step: float, step_s: float) -> float:
    """TFLOP/s achieved by steps of ``flops_per_step`` FLOPs taking ``step_s`` seconds each.

    >>> achieved_tflops(2e12, 0.5)
    4.0
    """
    if step_s <= 0:
        raise TorchscopeError(f"step time {step_s} s must be > 0")
    return flops_per_step / step_s / 1e12


def mfu(achieved: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved TFLOP/s as a fraction of the peak TFLOP/s.

    >>> mfu(247.375, 989.5)
    0.25
    """
    if peak <= 0:
        raise TorchscopeError(f"peak {peak} TFLOP/s must be > 0")
    return achieved / peak


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is zero.

    >>> ratio(49.0, 50.0), ratio(1.0, None)
    (0.98, None)
    """
    if a is None or b is None or b == 0:
        return None
    return a / b


def paired_ratio(harness_s: Sequence[float], baseline_s: Sequence[float]) -> float:
    """Median over window pairs of harness img/s / baseline img/s (same images per window).

    Pair ``i`` ran back to back, so each ratio sees the same machine load; the median of the pairs
    is steadier on a shared machine than a ratio of two medians.

    >>> paired_ratio([1.0, 2.0, 1.1], [1.0, 1.9, 1.0])
    0.95
    """
    if len(harness_s) != len(baseline_s) or not harness_s:
        raise TorchscopeError(
            f"paired ratio needs as many harness windows ({len(harness_s)}) as baseline windows ({len(baseline_s)}), >= 1"
        )
    return median([b / h for h, b in zip(harness_s, baseline_s, strict=True)])


def scaling_efficiency(global_img_s: float, world_size: int, single_img_s: float) -> float:
    """Global throughput over ``world_size`` times the single-process throughput.

    >>> scaling_efficiency(180.0, 2, 100.0)
    0.9
    """
    if world_size < 1 or single_img_s <= 0:
        raise TorchscopeError(f"world_size={world_size} and single-process {single_img_s} img/s must be > 0")
    return global_img_s / (world_size * single_img_s)


def next_bisect(lo: int, hi: int) -> int | None:
    """The next batch size to try between a size that fits (``lo``) and one that does not (``hi``).

    None when the search is done: within 1 below 64, within 8 (a multiple of 8) from 64 up, because
    kernels favour multiples of 8 and finer steps cost trials for no speed.

    >>> next_bisect(64, 128), next_bisect(64, 72), next_bisect(5, 6), next_bisect(4, 8)
    (96, None, None, 6)
    """
    if lo >= 64:
        if hi - lo <= 8:
            return None
        mid = (lo + hi) // 2
        return max(lo + 8, mid - mid % 8)
    if hi - lo <= 1:
        return None
    return (lo + hi) // 2
