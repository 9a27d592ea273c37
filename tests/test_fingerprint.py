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
