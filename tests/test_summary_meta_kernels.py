"""The meta kernels torchscope answers directly give what torch's own kernels give, or leave it to them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

import torchscope
from torchscope._flops import metacache
from torchscope._flops.metakernels import FAST_META

aten = torch.ops.aten


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def _layout(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape), out.stride(), out.dtype, out.device.type)
    return [_layout(o) for o in out]


def _same_as_torch(op: Any, *args: Any) -> bool:
    """True when the direct answer matches torch's kernel; False when it leaves the case to torch."""
    got = FAST_META[op](*args)
    if got is None:
        return False
    assert _layout(got) == _layout(op(*args)), (op, [getattr(a, "shape", a) for a in args])
    return True


def test_convolution_on_meta_answers_as_torchs_kernel() -> None:
    op = aten.convolution.default
    checked = 0
    cases = [
        # input, weight, stride, padding, dilation, groups
        ((2, 3, 17, 17), (8, 3, 3, 3), [1, 1], [1, 1], [1, 1], 1),
        ((1, 3, 224, 224), (64, 3, 7, 7), [2, 2], [3, 3], [1, 1], 1),
        ((1, 32, 9, 9), (32, 1, 3, 3), [2, 2], [1, 1], [1, 1], 32),  # depthwise
        ((1, 8, 9, 7), (4, 4, 3, 1), [1, 3], [0, 2], [2, 1], 2),
        ((1, 8, 1, 1), (16, 8, 1, 1), [1, 1], [0, 0], [1, 1], 1),
        ((2, 4, 10), (6, 4, 3), [2], [1], [1], 1),  # conv1d
        ((1, 2, 5, 6, 7), (3, 2, 3, 3, 3), [1, 2, 1], [1, 0, 1], [1, 1, 2], 1),  # conv3d
    ]
    for (xs, ws, stride, padding, dilation, groups), dtype in itertools.product(
        cases, (torch.float32, torch.bfloat16, torch.float16)
    ):
        x, w = _meta(*xs, dtype=dtype), _meta(*ws, dtype=dtype)
        inputs = [x, x.transpose(0, 1).contiguous().transpose(0, 1)]
        if x.dim() == 4:
            inputs.append(x.to(memory_format=torch.channels_last))
        for t, bias in itertools.product(inputs, (None, _meta(ws[0], dtype=dtype))):
            checked += _same_as_torch(op, t, w, bias, stride, padding, dilation, False, [0] * len(stride), groups)
    assert checked == 3 * 2 * (5 * 3 + 2 * 2)  # every plain case was answered, not left to torch


def test_convolution_on_meta_leaves_the_rest_to_torch() -> None:
    fast = FAST_META[aten.convolution.default]
    x, w = _meta(1, 4, 5, 5), _meta(2, 4, 3, 3)
    assert fast(x, w, None, [1, 1], [0, 0], [1, 1], True, [0, 0], 1) is None  # transposed
    assert fast(x, _meta(2, 2, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1) is None  # channels do not match
    assert fast(x, _meta(2, 4, 7, 7), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1) is None  # kernel too big
    assert fast(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1) is not None
    with pytest.raises(RuntimeError, match="Kernel size can't be greater"):
        aten.convolution.default(x, _meta(2, 4, 7, 7), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert fast(torch.empty(1, 4, 5, 5), w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1) is None  # on the CPU


def test_addmm_on_meta_answers_as_torchs_kernel() -> None:
    op = aten.addmm.default
    checked = 0
    for (m, k, n), dtype in itertools.product(
        [(1, 2048, 1000), (197, 768, 2304), (5, 3, 1), (1, 3, 1), (0, 3, 2), (4, 0, 2)],
        (torch.float32, torch.bfloat16, torch.float16, torch.float64),
    ):
        a = _meta(m, k, dtype=dtype)
        for b in (_meta(k, n, dtype=dtype), _meta(n, k, dtype=dtype).t()):
            for bias_shape in [(n,), (1, n), (m, n), (m, 1), (1,)]:
                checked += _same_as_torch(op, _meta(*bias_shape, dtype=dtype), a, b)
    assert checked == 6 * 4 * 2 * 5
    fast = FAST_META[op]
    assert fast(_meta(3), _meta(2, 4), _meta(4, 3), 0.5) is None  # beta given
    assert fast(_meta(3), _meta(2, 4), _meta(4, 3, dtype=torch.float64)) is None  # mixed dtypes
    assert fast(_meta(5), _meta(2, 4), _meta(4, 3)) is None  # a bias that does not broadcast
    assert fast(_meta(3, dtype=torch.int64), _meta(2, 4, dtype=torch.int64), _meta(4, 3, dtype=torch.int64)) is None


def test_cat_on_meta_answers_as_torchs_kernel() -> None:
    op = aten.cat.default
    checked = 0
    shapes = [[(1, 32, 7, 7), (1, 64, 7, 7), (1, 8, 7, 7)], [(2, 3), (2, 5)], [(1, 1, 1, 1), (1, 3, 1, 1)], [(4,)]]
    for group, dtype in itertools.product(shapes, (torch.float32, torch.float16)):
        plain = [_meta(*s, dtype=dtype) for s in group]
        layouts = [plain]
        if len(group[0]) == 4:
            last = [t.to(memory_format=torch.channels_last) for t in plain]
            layouts += [last, [last[0], *plain[1:]], [*plain[:-1], last[-1]]]
        dims = {4: (1, -3), 2: (1, -1), 1: (0, -1)}[len(group[0])]
        for tensors, dim in itertools.product(layouts, dims):
            checked += _same_as_torch(op, tensors, dim)
    assert checked == 2 * 2 * (4 * 2 + 1 + 1)
    # the same layout decided by torch for every case answered: channels-last in, channels-last out
    out = FAST_META[op]([_meta(1, 4, 3, 3).to(memory_format=torch.channels_last)] * 2, 1)
    assert out.is_contiguous(memory_format=torch.channels_last)
    fast = FAST_META[op]
    assert fast([_meta(2, 3), _meta(2, 3, dtype=torch.float64)], 0) is None  # promotion: torch decides
    assert fast([_meta(2, 3), _meta(0)], 0) is None  # the legacy empty 1-d input
    assert fast([_meta(2, 3), _meta(3, 3)], 1) is None  # sizes that do not match: torch's error


def test_batch_norm_with_odd_strides_at_size_one_dims_is_left_to_torch() -> None:
    # contiguous, but dim 0's stride is not the usual one: torch's kernel picks yet another
    x = torch.empty(1, 8, 5, 5, device="meta").as_strided((1, 8, 5, 5), (7, 25, 5, 1))
    w = _meta(8)
    assert x.is_contiguous()
    assert FAST_META[aten.native_batch_norm.default](x, w, w, w, w, False, 0.1, 1e-5) is None


def test_mean_on_meta_answers_as_torchs_kernel() -> None:
    op = aten.mean.dim
    checked = 0
    cases = [((1, 2048, 7, 7), [-1, -2]), ((1, 96, 56, 56), [2, 3]), ((4, 5), [1]), ((4, 5), [0]), ((2, 3, 4), [0, 2])]
    for (shape, dims), dtype, keepdim in itertools.product(cases, (torch.float32, torch.float16), (True, False)):
        x = _meta(*shape, dtype=dtype)
        layouts = [x, x.transpose(0, -1)] + ([x.to(memory_format=torch.channels_last)] if len(shape) == 4 else [])
        for t in layouts:
            checked += _same_as_torch(op, t, dims, keepdim)
    assert checked == 2 * 2 * (2 * 3 + 3 * 2)
    fast = FAST_META[op]
    assert fast(_meta(2, 3), [1, -1]) is None  # a dim twice: torch's error
    assert fast(_meta(2, 3, dtype=torch.int64), [1]) is None
    assert fast(_meta(2, 3), [1], True, torch.float64) is None  # a dtype given


def test_layer_norm_on_meta_answers_as_torchs_kernel() -> None:
    op = aten.native_layer_norm.default
    checked = 0
    cases = [((1, 197, 768), [768]), ((2, 3, 4, 5), [4, 5]), ((8, 16), [16]), ((8, 16), [8, 16])]
    for (shape, norm), dtype in itertools.product(cases, (torch.float32, torch.float16, torch.bfloat16, torch.float64)):
        x = _meta(*shape, dtype=dtype)
        # transposed: (197, 1, 768) is contiguous with strides of its own, (3, 2, 4, 5) is left to torch
        for t, w in itertools.product((x, x.transpose(0, 1)), (_meta(*norm, dtype=dtype), None)):
            checked += _same_as_torch(op, t, norm, w, w, 1e-5)
    assert checked == (4 + 1) * 4 * 2
    assert FAST_META[op](_meta(2, 3, 4, 5).transpose(0, 1), [4, 5], None, None, 1e-5) is None
    assert FAST_META[op](_meta(2, 3), [4], None, None, 1e-5) is None  # a shape torch refuses


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "mobilenet_v3_small"])
def test_meta_summary_counts_as_a_real_forward(name: str) -> None:
    # the direct answers feed the formulas the same shapes: the meta summary of a CPU model
    # and the summary of the same model built on meta are the real forward's, row by row
    torch.manual_seed(0)
    cpu_model = getattr(torchvision.models, name)()
    x = torch.randn(1, 3, 64, 64)
    real = torchscope.summary(cpu_model, input_data=x, verbose=0).to_dict()
    metacache.clear()
    with torch.device("meta"):
        meta_model = getattr(torchvision.models, name)()
    cold = torchscope.summary(meta_model, input_data=x.to("meta"), verbose=0).to_dict()
    warm = torchscope.summary(meta_model, input_data=x.to("meta"), verbose=0).to_dict()
    assert cold == warm
    assert cold["total_mult_adds"] == real["total_mult_adds"] > 0
    assert [(r["name"], r["outputs"], r["mult_adds"]) for r in cold["rows"]] == [
        (r["name"], r["outputs"], r["mult_adds"]) for r in real["rows"]
    ]


def test_a_model_that_cats_channels_last_on_meta() -> None:
    class Concat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 6, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.a(x).contiguous(memory_format=torch.channels_last), self.b(x)], 1)

    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(0)
    real = torchscope.summary(Concat(), input_data=x, verbose=0).to_dict()
    meta = torchscope.summary(Concat().to("meta"), input_data=x.to("meta"), verbose=0).to_dict()
    assert meta["outputs"] == real["outputs"] and meta["total_mult_adds"] == real["total_mult_adds"]
