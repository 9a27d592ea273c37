"""The fused C fingerprint kernel: bit-identical to the torch path, one pass, nothing allocated."""

from __future__ import annotations

import pytest
import torch

from torchscope import _fused, check_step, fingerprint
from torchscope._fingerprint import track_allocations

pytestmark = pytest.mark.skipif(
    _fused.library() is None, reason=f"fused kernel unavailable: {_fused.status()}"
)

DTYPES = [
    torch.float32,
    torch.bfloat16,
    torch.float16,
    torch.float64,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
]
# around every chunk size (256 .. 8192), the threads' split (from 128 chunks, blocks of 16)
SIZES = [1, 3, 255, 256, 257, 1000, 8191, 8192 * 64 + 1, 8192 * 131 + 17]


def _torch_path(t: torch.Tensor) -> int:
    _fused.enabled = False
    try:
        return fingerprint(t)
    finally:
        _fused.enabled = True


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fused_equals_the_torch_path(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    for n in SIZES:
        if dtype.is_complex:
            t = torch.randn(n, dtype=dtype, generator=gen)
        else:
            t = (torch.randn(n, generator=gen) * 1000).to(dtype)  # negative bit patterns too
        assert fingerprint(t) == _torch_path(t), (dtype, n)


def test_non_contiguous_and_channels_last_tensors() -> None:
    x = torch.randn(4, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    assert fingerprint(x) == _torch_path(x)
    y = torch.randn(64, 64).t()
    assert fingerprint(y) == _torch_path(y)
    z = torch.randn(64, 64)[:, ::2]  # not dense: copied, then fingerprinted
    assert fingerprint(z) == _torch_path(z)


def test_each_single_element_change_of_a_large_tensor_is_seen() -> None:
    t = torch.randn(8192 * 70, dtype=torch.bfloat16)
    before = fingerprint(t)
    for index in (0, 8191, 8192, 300_001, t.numel() - 1):
        old = t[index].clone()
        t[index] = torch.nextafter(old, torch.tensor(1e30, dtype=t.dtype))
        assert fingerprint(t) != before, index
        t[index] = old
    assert fingerprint(t) == before


def test_the_kernel_allocates_only_its_result() -> None:
    t = torch.randn(1 << 20)
    fingerprint(t)  # weights cached
    with track_allocations() as mem:
        fingerprint(t)
    assert mem.peak <= 64  # the 0-d result (the torch path needs an int64 chunk buffer: 64 KiB)


def test_check_step_in_fingerprint_mode_uses_it_and_sees_a_moved_frozen_weight() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.Linear(512, 2))
    model[0].requires_grad_(False)
    opt = torch.optim.SGD(model[1].parameters(), lr=0.1)

    def step() -> None:
        opt.zero_grad()
        model(torch.randn(4, 512)).sum().backward()
        opt.step()
        with torch.no_grad():
            model[0].weight[7, 9] += 1e-3  # the bug: a "frozen" weight moves

    report = check_step(model, step, optimizer=opt, mode="fingerprint")
    assert not report.ok
    assert [v.name for v in report.violations] == ["0.weight"]
