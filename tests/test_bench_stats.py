"""The benchmark's arithmetic, apart from any measurement: percentiles, window summaries, MFU, peaks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from torchscope._bench.stats import (
    PEAK_TFLOPS,
    achieved_tflops,
    datasheet_key,
    datasheet_peak,
    median,
    mfu,
    next_bisect,
    paired_ratio,
    percentile,
    ratio,
    scaling_efficiency,
    spread_pct,
    summarize_windows,
)
from torchscope.errors import TorchscopeError


def test_percentile_matches_numpy_linear_interpolation() -> None:
    np = pytest.importorskip("numpy")
    values = [5.0, 1.0, 9.5, 3.25, 7.0, 2.0]
    for q in (0, 10, 25, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_median_odd_and_even() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.0]) == 7.0


def test_percentile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(TorchscopeError, match="no values"):
        percentile([], 50)
    with pytest.raises(TorchscopeError, match="q=101"):
        percentile([1.0], 101)


def test_spread_is_range_over_median() -> None:
    assert spread_pct([90.0, 100.0, 110.0]) == pytest.approx(20.0)
    assert spread_pct([5.0, 5.0]) == 0.0


def test_summarize_windows_from_raw_times() -> None:
    # 3 windows of 10 steps at batch 16: 160 images each
    stats = summarize_windows([0.5, 0.4, 0.8], steps=10, images_per_step=16)
    assert stats.img_s_median == pytest.approx(320.0)
    assert stats.img_s_min == pytest.approx(200.0)
    assert stats.img_s_max == pytest.approx(400.0)
    assert stats.spread_pct == pytest.approx(62.5)
    # window mean step times are 50, 40, 80 ms
    assert stats.step_ms_p50 == pytest.approx(50.0)
    assert stats.step_ms_p90 == pytest.approx(74.0)
    assert stats.to_dict() == {
        "img_s_median": stats.img_s_median,
        "img_s_min": stats.img_s_min,
        "img_s_max": stats.img_s_max,
        "spread_pct": stats.spread_pct,
        "step_ms_p50": stats.step_ms_p50,
        "step_ms_p90": stats.step_ms_p90,
    }


def test_summarize_windows_rejects_bad_input() -> None:
    with pytest.raises(TorchscopeError, match="positive and finite"):
        summarize_windows([0.1, 0.0], steps=1, images_per_step=1)
    with pytest.raises(TorchscopeError, match="steps=0"):
        summarize_windows([0.1], steps=0, images_per_step=1)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100 SXM"),
        ("NVIDIA A100-SXM4-40GB", "A100 SXM"),
        ("NVIDIA A100-PCIE-40GB", "A100 PCIe"),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA GeForce RTX 4090", None),
        ("AMD EPYC", None),
    ],
)
def test_datasheet_key_from_device_names(name: str, key: str | None) -> None:
    assert datasheet_key(name) == key


def test_datasheet_peaks_are_dense_halves_of_the_sparse_figures() -> None:
    # H100 SXM datasheet: BF16 1979 and TF32 989 TFLOP/s *with sparsity*
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "bf16") == ("H100 SXM", 989.5)
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "tf32") == ("H100 SXM", 494.5)
    assert datasheet_peak("NVIDIA H100 PCIe", "fp16") == ("H100 PCIe", 756.5)
    assert datasheet_peak("NVIDIA A100-SXM4-80GB", "bf16") == ("A100 SXM", 312.0)
    assert datasheet_peak("NVIDIA A100-SXM4-80GB", "fp32") == ("A100 SXM", 19.5)
    assert datasheet_peak("NVIDIA H200", "bf16") == ("H200 SXM", 989.5)
    assert datasheet_peak("NVIDIA H200 NVL", "bf16") == ("H200 NVL", 835.5)
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "int4") is None
    assert datasheet_peak("cpu", "fp32") is None
    for row in PEAK_TFLOPS.values():
        assert row["bf16"] == row["fp16"] and row["tf32"] < row["bf16"] and row["fp32"] < row["tf32"]


def test_mfu_and_achieved() -> None:
    # ResNet-50 full step ~ 3 x 4.1 GFLOP x 256 images in 0.1 s
    flops = 3 * 4.1e9 * 256
    achieved = achieved_tflops(flops, 0.1)
    assert achieved == pytest.approx(31.488)
    assert mfu(achieved, 989.5) == pytest.approx(31.488 / 989.5)
    with pytest.raises(TorchscopeError, match="step time 0"):
        achieved_tflops(1.0, 0)
    with pytest.raises(TorchscopeError, match="peak 0"):
        mfu(1.0, 0)


def test_paired_ratio_follows_load_changes() -> None:
    # the machine slows down 3x in the second pair; each pair still shows a 2% harness cost
    harness = [1.0 / 0.98, 3.0 / 0.98, 1.0 / 0.98]
    baseline = [1.0, 3.0, 1.0]
    assert paired_ratio(harness, baseline) == pytest.approx(0.98)
    with pytest.raises(TorchscopeError, match="as many harness windows"):
        paired_ratio([1.0], [1.0, 2.0])


def test_ratio_and_scaling_efficiency() -> None:
    assert ratio(98.0, 100.0) == pytest.approx(0.98)
    assert ratio(None, 1.0) is None and ratio(1.0, 0.0) is None
    assert scaling_efficiency(190.0, 2, 100.0) == pytest.approx(0.95)
    with pytest.raises(TorchscopeError, match="world_size=0"):
        scaling_efficiency(1.0, 0, 1.0)


def test_next_bisect_converges_to_multiples_of_eight_from_64() -> None:
    assert next_bisect(8, 16) == 12
    assert next_bisect(12, 13) is None
    assert next_bisect(64, 128) == 96
    assert next_bisect(96, 128) == 112
    assert next_bisect(112, 128) == 120
    assert next_bisect(120, 128) is None
    # a search from 64 only ever proposes multiples of 8
    lo, hi, seen = 64, 128, []
    while (mid := next_bisect(lo, hi)) is not None:
        seen.append(mid)
        lo, hi = (mid, hi) if mid <= 100 else (lo, mid)
    assert all(m % 8 == 0 for m in seen) and lo == 96 and hi == 104


_times = st.lists(st.floats(min_value=1e-4, max_value=1e3, allow_nan=False), min_size=1, max_size=12)


@given(_times, st.floats(min_value=0, max_value=100), st.floats(min_value=0, max_value=100))
def test_percentile_is_bounded_and_monotone(values: list[float], q1: float, q2: float) -> None:
    lo, hi = sorted((q1, q2))
    assert min(values) - 1e-9 <= percentile(values, lo) <= percentile(values, hi) + 1e-9 <= max(values) + 2e-9


@given(_times, st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=512))
def test_window_summary_is_consistent(window_s: list[float], steps: int, batch: int) -> None:
    s = summarize_windows(window_s, steps=steps, images_per_step=batch)
    assert s.img_s_min <= s.img_s_median * (1 + 1e-9) and s.img_s_median <= s.img_s_max * (1 + 1e-9)
    assert s.step_ms_p50 <= s.step_ms_p90 * (1 + 1e-9)
    # the median window's rate and its step time describe the same window
    assert s.img_s_median == pytest.approx(median([steps * batch / t for t in window_s]))
