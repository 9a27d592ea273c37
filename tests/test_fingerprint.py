"""fingerprint(): one 64-bit number per tensor, O(1) extra memory, sees any single changed element."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchscope import fingerprint
from torchscope._fingerprint import has_hash_tensor, track_allocations
from torchscope.errors import TorchscopeError

METHODS = ["weighted", *(["hash"] if has_hash_tensor() else [])]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.uint8]


@st.composite
def tensor_and_change(draw: st.DrawFn) -> tuple[torch.Tensor, int, float]:
    shape = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        t = torch.randn(shape, generator=gen).to(dtype)
    else:
        t = torch.randint(0, 100, shape, generator=gen).to(dtype)
    index = draw(st.integers(0, t.numel() - 1))
    delta = draw(st.sampled_from([1.0, -1.0, 0.5, 1e-3, 37.0]))
    return t, index, delta


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=tensor_and_change())
def test_a_single_changed_element_changes_the_fingerprint(method: str, case) -> None:
    t, index, delta = case
    before = fingerprint(t, method=method)
    flat = t.reshape(-1)
    old = flat[index].clone()
    if t.dtype.is_floating_point:
        # the smallest change the dtype can hold, in the drawn direction
        flat[index] = torch.nextafter(old, torch.tensor(delta * 1e30, dtype=t.dtype))
    else:
        flat[index] = old + (1 if old < 99 else -1)
    assert not torch.equal(flat[index], old)
    assert fingerprint(t, method=method) != before
    flat[index] = old
    assert fingerprint(t, method=method) == before


@pytest.mark.parametrize("method", METHODS)
def test_negative_zero_and_nan_payloads_count_as_changes(method: str) -> None:
    t = torch.zeros(100)
    before = fingerprint(t, method=method)
    t[50] = -0.0
    assert fingerprint(t, method=method) != before
    t[50] = float("nan")
    nan = fingerprint(t, method=method)
    t[50] = -float("nan")
    assert fingerprint(t, method=method) != nan


def test_weighted_method_sees_two_elements_swapping_places() -> None:
    t = torch.arange(20_000, dtype=torch.float32)
    before = fingerprint(t, method="weighted")
    t[[3, 19_000]] = t[[19_000, 3]]
    assert fingerprint(t, method="weighted") != before


def test_layout_does_not_matter_only_values() -> None:
    torch.manual_seed(0)
    a = torch.randn(2, 3, 4, 5)
    b = a.to(memory_format=torch.channels_last)
    for method in METHODS:
        # same values in another layout: fingerprints may differ, but each is stable and change-sensitive
        fb = fingerprint(b, method=method)
        assert fingerprint(b.clone(memory_format=torch.channels_last), method=method) == fb
        b[1, 2, 3, 4] += 1
        assert fingerprint(b, method=method) != fb
        b[1, 2, 3, 4] -= 1


def test_sequence_and_mapping_forms() -> None:
    a, b = torch.ones(3), torch.zeros(0)
    assert fingerprint([a, b]) == (fingerprint(a), 0)
    assert fingerprint({"a": a, "b": b}) == {"a": fingerprint(a), "b": 0}
    with pytest.raises(TorchscopeError, match="takes a tensor, a sequence or a mapping of tensors, not int"):
        fingerprint(3)  # type: ignore[call-overload]
    with pytest.raises(TorchscopeError, match="meta device"):
        fingerprint(torch.empty(3, device="meta"))
    with pytest.raises(TorchscopeError, match=re.escape("method='md5' is not one of")):
        fingerprint(a, method="md5")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", METHODS)
def test_extra_memory_is_at_most_one_percent_of_the_tensor(method: str) -> None:
    t = torch.randn(6_000_000)  # 24 MB
    fingerprint(t, method=method)  # the weighted method caches its weights once per device
    with track_allocations() as mem:
        fingerprint(t, method=method)
    assert mem.peak <= 0.01 * t.nbytes, (mem.peak, t.nbytes)


def test_tracker_counts_new_storages_not_views_or_in_place() -> None:
    x = torch.ones(1000)
    with track_allocations() as mem:
        x.add_(1)
        v = x[10:20]
        y = x * 2
        peak_with_y = mem.current
        del y
    assert peak_with_y == 4000 and mem.current == 0 and mem.peak == 4000 and v.numel() == 10


def _reference(t: torch.Tensor) -> int:
    """The documented definition in plain Python ints (docs/freeze.md, "Fingerprints")."""
    from torchscope._fingerprint import _weights, chunk_for

    flat = t.reshape(-1)
    size = min(flat.element_size(), 4)  # 8-byte elements: their two 4-byte halves
    bits = flat.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[size]).tolist()
    bits = [b % 2 ** (8 * size) for b in bits]  # zero-extended patterns
    chunk = chunk_for(len(bits))
    weights = [w % 2**32 for w in _weights(t.device, chunk).tolist()]  # the low 32 bits (odd)
    total = 0
    for k, start in enumerate(range(0, len(bits), chunk)):
        part = sum(b * w for b, w in zip(bits[start : start + chunk], weights, strict=False))
        total += part * (2 * k + 1) * 0x9E3779B97F4A7C15
    return total % 2**64


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "torch"])
@pytest.mark.parametrize(
    "dtype",
    [torch.bfloat16, torch.float16, torch.float32, torch.float64, torch.int64, torch.int16, torch.uint8],
    ids=str,
)
def test_weighted_fingerprint_is_its_documented_definition(dtype: torch.dtype, fused: bool) -> None:
    from torchscope import _fused

    gen = torch.Generator().manual_seed(3)
    t = (torch.randn(700, generator=gen) * 100).to(dtype)  # 3 chunks of 256, negative patterns too
    _fused.enabled = fused
    try:
        assert fingerprint(t, method="weighted") % 2**64 == _reference(t)
    finally:
        _fused.enabled = True


def test_the_32_bit_weights_are_odd_and_distinct_so_every_swap_in_a_chunk_is_seen() -> None:
    from torchscope._fingerprint import CHUNK, _weights32

    chunk = 256
    while chunk <= CHUNK:
        w = _weights32(torch.device("cpu"), chunk)
        assert bool((w % 2 == 1).all()) and bool((w < 2**32).all()) and w.unique().numel() == chunk, chunk
        chunk *= 2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_the_same_bit_flipped_in_two_elements_is_seen(dtype: torch.dtype) -> None:
    # float64: two flipped sign bits cancel with 64-bit patterns times odd weights, not with halves
    t = torch.randn(50_000, generator=torch.Generator().manual_seed(5)).to(dtype)
    bits = t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
    before = fingerprint(t, method="weighted")
    for i, j in ((10, 11), (100, 40_000)):
        for bit in (0, 7, 8 * t.element_size() - 2, 8 * t.element_size() - 1):  # low, middle, exponent, sign
            top = bit == 8 * t.element_size() - 1  # the sign bit alone is -(1 << bit) as a signed int
            mask = torch.tensor(-(1 << bit) if top else 1 << bit, dtype=bits.dtype)
            bits[i] ^= mask
            bits[j] ^= mask
            assert fingerprint(t, method="weighted") != before, (i, j, bit)
            bits[i] ^= mask
            bits[j] ^= mask
    assert fingerprint(t, method="weighted") == before
