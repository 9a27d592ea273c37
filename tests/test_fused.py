"""The fused one-pass CPU kernel behind record(): same statistics as a float64 oracle, on both paths."""

from __future__ import annotations

import math
import platform
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchscope import _fused, record
from torchscope._record import tensor_stats

HAS_KERNEL = platform.machine().lower() in {"x86_64", "amd64"} and bool(
    shutil.which("cc") or shutil.which("gcc")
)
needs_kernel = pytest.mark.skipif(not HAS_KERNEL, reason="the fused kernel needs x86-64 and a C compiler")

# sizes around the kernel's 16-element step and 4096-element block
SIZES = [1, 2, 7, 15, 16, 17, 31, 33, 4095, 4096, 4097, 4111, 8192 + 23, 20_000]
SPECIAL = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e30, -1e30, 1e-40, 3.0]


def oracle(t: torch.Tensor) -> list[float]:
    """What tensor_stats must return, computed plainly in float64."""
    x = t.double().reshape(-1)
    n = x.numel()
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    finite = nan == 0 and inf == 0
    mean = x.mean().item()
    std = (x.std().item() if n > 1 else 0.0) if finite else math.nan
    lo, hi = (math.nan, math.nan) if nan else (x.min().item(), x.max().item())
    absmax = math.nan if nan else max(abs(lo), abs(hi))
    zeros = int((x == 0).sum())
    return [mean, std, lo, hi, absmax, zeros / n, float(nan), float(inf)]


def assert_stats(got: list[float], t: torch.Tensor) -> None:
    want = oracle(t)
    scale = t.double().abs().nan_to_num(posinf=0.0).mean().item()  # sums carry error relative to |x|
    for name, g, w in zip(tensor_stats_fields(), got, want, strict=True):
        if math.isnan(w) or math.isinf(w):
            # mean/std of non-finite data: only "not finite" is promised, not which non-finite value
            if name in ("mean", "std"):
                assert not math.isfinite(g), (name, g, w)
            else:
                assert g == w or (math.isnan(g) and math.isnan(w)), (name, g, w)
        elif name in ("mean", "std"):
            assert g == pytest.approx(w, rel=1e-4, abs=1e-4 * scale + 1e-30), (name, g, w)
        else:
            assert g == w, (name, g, w)


def tensor_stats_fields() -> tuple[str, ...]:
    from torchscope._record import STAT_FIELDS

    return STAT_FIELDS


@pytest.fixture(params=["fused", "torch"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test on the fused kernel and on the torch reductions."""
    if request.param == "fused" and not HAS_KERNEL:
        pytest.skip("the fused kernel needs x86-64 and a C compiler")
    monkeypatch.setattr(_fused, "enabled", request.param == "fused")
    yield request.param


@st.composite
def activations(draw: st.DrawFn) -> torch.Tensor:
    n = draw(st.sampled_from(SIZES))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    base = draw(st.sampled_from(["normal", "relu", "offset", "constant"]))
    x = torch.randn(n, generator=gen, dtype=torch.float64)
    if base == "relu":
        x = x.relu()
    elif base == "offset":  # a large mean next to a small spread: the moment formula cancels
        x = 1000.0 + 1e-3 * x
    elif base == "constant":
        x = torch.full((n,), draw(st.sampled_from([0.0, 2.5, -7.0])), dtype=torch.float64)
    for _ in range(draw(st.integers(0, 3))):
        x[draw(st.integers(0, n - 1))] = draw(st.sampled_from(SPECIAL))
    return x.float()


@given(activations())
@settings(max_examples=120, deadline=None)
def test_statistics_match_a_float64_oracle(x: torch.Tensor) -> None:
    for enabled in (True, False):
        _fused.enabled = enabled
        try:
            assert_stats(tensor_stats(x).tolist(), x)
        finally:
            _fused.enabled = True


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs(path: str, dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 4111).relu().to(dtype)
    x[0, 5] = -0.0
    assert_stats(tensor_stats(x).tolist(), x)
    x[1, 7] = math.inf
    assert_stats(tensor_stats(x).tolist(), x)


def test_dense_layouts_use_the_kernel_and_strided_views_do_not(path: str) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 8, 9, 10)
    for t in (x, x.to(memory_format=torch.channels_last), x.transpose(0, 3), x[1]):
        assert_stats(tensor_stats(t).tolist(), t)
        assert (_fused.fused_stats(t) is not None) == (path == "fused")
    for t in (x[:, ::2], x[..., :5], x.expand(3, 2, 8, 9, 10)[:, 0]):
        assert _fused.fused_stats(t) is None  # not one dense block of memory: torch's reductions
        assert_stats(tensor_stats(t).tolist(), t)


@needs_kernel
def test_threads_split_large_tensors_with_the_same_result() -> None:
    lib = _fused.library()
    assert lib is not None, _fused.status()
    torch.manual_seed(3)
    x = torch.randn(9_000_000).relu()  # above twice the kernel's per-thread minimum
    x[123] = -0.0
    one, two = torch.empty(8, dtype=torch.float64), torch.empty(8, dtype=torch.float64)
    lib.ts_stats(x.data_ptr(), x.numel(), 0, 1, one.data_ptr())
    lib.ts_stats(x.data_ptr(), x.numel(), 0, 2, two.data_ptr())
    assert one[2:].tolist() == two[2:].tolist()  # min, max, absmax, zeros, nan, inf: exact
    assert two[:2].tolist() == pytest.approx(one[:2].tolist(), rel=1e-6)  # other block edges
    assert_stats(two.tolist(), x)


@needs_kernel
def test_record_uses_the_kernel_on_the_cpu() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    with record(model) as rec:
        out = model(torch.randn(4, 8))
    assert _fused.status() == "in use"
    calls = rec.report().calls
    assert [c.module for c in calls] == ["0", "1"]
    stats = calls[1].stats
    assert stats is not None
    assert_stats([getattr(stats, f) for f in tensor_stats_fields()], out.detach())


@pytest.fixture
def fresh_library(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """A clean slate for :func:`_fused.library` (it is cached per process)."""
    monkeypatch.setenv("TORCHSCOPE_CACHE_DIR", str(tmp_path))
    _fused.library.cache_clear()
    yield
    _fused.library.cache_clear()


def test_disabled_by_environment(fresh_library: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHSCOPE_FUSED", "0")
    assert _fused.library() is None
    assert _fused.status() == "disabled by TORCHSCOPE_FUSED=0"
    x = torch.tensor([0.0, 2.0, -2.0, 4.0])
    assert_stats(tensor_stats(x).tolist(), x)  # the torch path answers instead


@needs_kernel
def test_a_broken_compiler_falls_back_with_a_reason(
    fresh_library: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    assert _fused.library() is None
    assert _fused.status().startswith("build failed")
    x = torch.tensor([1.0, 0.0, 3.0])
    assert_stats(tensor_stats(x).tolist(), x)


@needs_kernel
def test_built_once_into_the_cache_and_reused(fresh_library: None, tmp_path) -> None:
    assert _fused.library() is not None
    built = list((tmp_path / "kernels").glob("fused_stats-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    _fused.library.cache_clear()
    assert _fused.library() is not None and built[0].stat().st_mtime_ns == stamp
    assert list((tmp_path / "kernels").iterdir()) == built  # no temporary files left behind


@needs_kernel
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_kernel_shares_torchs_openmp_runtime() -> None:
    """Two OpenMP runtimes in one process would mean twice the threads fighting for the cores."""
    assert _fused.library() is not None, _fused.status()
    maps = Path("/proc/self/maps").read_text().splitlines()
    runtimes = {
        line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line or "libomp" in line
    }
    assert len(runtimes) <= 1, runtimes
