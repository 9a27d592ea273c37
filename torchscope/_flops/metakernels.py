"""Meta kernels that torch writes in Python, answered directly for the cases that are plain.

On the meta device a forward pass computes nothing, but some of torch's meta kernels are Python
decompositions: batch norm's costs about a millisecond a call, ``addmm``'s and ``cat``'s a few hundred
microseconds, convolution's about a hundred. A model's first meta summary meets each of them once per
distinct shape (the shape cache answers repeats), so on resnet50 or densenet121 they are most of the
call. Each function here returns what torch's kernel returns (shapes, strides, dtypes: checked against
torch's in ``tests/test_summary_meta_kernels.py``) or None where the case is not plain (another layout,
mixed dtypes, arguments torch would refuse): torch's own kernel answers those, errors included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._prims_common import suggest_memory_format

aten = torch.ops.aten
_TENSOR, _STRIDED, _META = torch.Tensor, torch.strided, torch.device("meta")


def _plain(*tensors: Any) -> bool:
    # dense tensors on meta: the only ones these answers are written for
    return all(
        isinstance(t, _TENSOR) and t.is_meta and t.layout is _STRIDED and not t.is_nested for t in tensors
    )


def _batch_norm_meta(
    input: torch.Tensor, weight: Any, bias: Any, running_mean: Any, running_var: Any, *rest: Any
) -> Any:
    """``aten.native_batch_norm``: the output is laid out as the input, the saved mean and inverse std
    are one value per channel in the op's computation dtype (float32 for half and bfloat16). None
    where the input is not dense in a standard layout: the real kernel decides those strides.
    """
    if not _plain(input):
        return None
    training = bool(rest[0]) if rest else False
    if input.dim() < 2 or (not training and (running_mean is None or running_var is None)):
        return None  # torch's kernel raises there: let it
    if input.is_contiguous():
        out = torch.empty(input.shape, dtype=input.dtype, device=_META)
    elif input.dim() in (4, 5) and input.is_contiguous(
        memory_format=torch.channels_last if input.dim() == 4 else torch.channels_last_3d
    ):
        out = torch.empty_like(input)
    else:
        return None
    if out.stride() != input.stride():
        return None  # odd strides at size-1 dims: torch's own rule decides those
    stats = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    channels = (input.shape[1],)
    return (
        out,
        torch.empty(channels, dtype=stats, device=_META),
        torch.empty(channels, dtype=stats, device=_META),
    )


def _ints(values: Any, n: int, least: int) -> bool:
    return (
        isinstance(values, (list, tuple))
        and len(values) == n
        and all(type(v) is int and v >= least for v in values)
    )


def _convolution_meta(
    input: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
    transposed: Any, output_padding: Any, groups: Any, *rest: Any,
) -> Any:  # fmt: skip
    """``aten.convolution``, not transposed: torch's meta kernel answers a contiguous tensor of the
    input's dtype with the shape of the conv formula (it ignores the bias and the memory format)."""
    if rest or transposed is not False or not _plain(input, weight) or (bias is not None and not _plain(bias)):
        return None
    n = input.dim() - 2
    if n < 1 or weight.dim() != n + 2 or type(groups) is not int or groups < 1:
        return None
    if not (_ints(stride, n, 1) and _ints(padding, n, 0) and _ints(dilation, n, 1)):
        return None
    batch, channels = input.shape[:2]
    if channels == 0 or weight.shape[1] * groups != channels:
        return None  # torch's check or its empty-channel rule
    shape = [batch, weight.shape[0]]
    for size, k, s, p, d in zip(input.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True):
        if size + 2 * p < d * (k - 1) + 1:
            return None  # a kernel larger than the padded input: torch's error
        shape.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
    if any(d <= 0 for d in shape[2:]):
        return None  # torch's "output size is too small" (or a shape it would refuse)
    return torch.empty(shape, dtype=input.dtype, device=_META)


def _addmm_meta(bias: Any, mat1: Any, mat2: Any, *rest: Any) -> Any:
    """``aten.addmm(bias, mat1, mat2)`` (nn.Linear): a contiguous (m, n) tensor, for three floating
    tensors of one dtype with the default beta and alpha and a bias that broadcasts to (m, n)."""
    if rest or not _plain(bias, mat1, mat2):
        return None
    dtype = mat1.dtype
    if not dtype.is_floating_point or bias.dtype is not dtype or mat2.dtype is not dtype:
        return None
    if mat1.dim() != 2 or mat2.dim() != 2 or mat1.shape[1] != mat2.shape[0] or bias.dim() > 2:
        return None
    shape = (mat1.shape[0], mat2.shape[1])
    if any(b not in (1, s) for b, s in zip(reversed(bias.shape), reversed(shape), strict=False)):
        return None  # not broadcastable: torch's error
    return torch.empty(shape, dtype=dtype, device=_META)


def _cat_meta(tensors: Any, dim: Any = 0, *rest: Any) -> Any:
    """``aten.cat`` of tensors with one dtype and one number of dimensions, none of them empty: the
    memory format is the inputs' when they share one, else contiguous (torch's rule)."""
    if rest or type(dim) is not int or not isinstance(tensors, (list, tuple)) or not tensors:
        return None
    if not _plain(*tensors):
        return None
    first = tensors[0]
    ndim, dtype = first.dim(), first.dtype
    if ndim == 0 or not -ndim <= dim < ndim:
        return None
    dim %= ndim
    shape = list(first.shape)
    shape[dim] = 0
    fmt = None
    for t in tensors:
        if t.dtype is not dtype or t.dim() != ndim or t.numel() == 0:
            return None  # promotion, the legacy empty 1-d rule, an empty input: torch decides
        for d in range(ndim):
            if d != dim and t.shape[d] != shape[d]:
                return None
        shape[dim] += t.shape[dim]
        f = suggest_memory_format(t)
        fmt = f if fmt is None or fmt == f else torch.contiguous_format
    return torch.empty(shape, dtype=dtype, device=_META, memory_format=fmt)


def _mean_meta(input: Any, dim: Any, keepdim: Any = False, *rest: Any) -> Any:
    """``aten.mean.dim`` of a floating tensor over distinct dims: a contiguous tensor of the reduced
    shape in the input's dtype (pooling heads, squeeze-and-excitation)."""
    if rest or not _plain(input) or not input.dtype.is_floating_point or type(keepdim) is not bool:
        return None
    n = input.dim()
    if not isinstance(dim, (list, tuple)) or not dim or n == 0 or input.numel() == 0:
        return None  # an empty dim list reduces everything; an empty input: torch decides
    if not all(type(d) is int and -n <= d < n for d in dim):
        return None
    reduced = {d % n for d in dim}
    if len(reduced) != len(dim):
        return None  # a dim named twice: torch's error
    shape = [1 if d in reduced else s for d, s in enumerate(input.shape) if keepdim or d not in reduced]
    return torch.empty(shape, dtype=input.dtype, device=_META)


def _layer_norm_meta(input: Any, normalized_shape: Any, weight: Any, bias: Any, eps: Any, *rest: Any) -> Any:
    """``aten.native_layer_norm`` of a contiguous input: the output laid out as the input, the mean
    and inverse std contiguous with the normalised dims kept as 1, in float32 for half and bfloat16."""
    if rest or not _plain(input) or not input.is_contiguous() or not input.dtype.is_floating_point:
        return None
    if not isinstance(normalized_shape, (list, tuple)) or not normalized_shape:
        return None
    k, shape = len(normalized_shape), tuple(input.shape)
    if k > len(shape) or tuple(normalized_shape) != shape[len(shape) - k :]:
        return None  # torch's error
    for t in (weight, bias):
        if t is not None and (not _plain(t) or tuple(t.shape) != tuple(normalized_shape)):
            return None
    stats = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    kept = shape[: len(shape) - k] + (1,) * k
    return (
        # the input's own strides: a contiguous tensor's may differ from the usual ones at size-1 dims
        torch.empty_strided(shape, input.stride(), dtype=input.dtype, device=_META),
        torch.empty(kept, dtype=stats, device=_META),
        torch.empty(kept, dtype=stats, device=_META),
    )


FAST_META: dict[Any, Callable[..., Any]] = {
    aten.native_batch_norm.default: _batch_norm_meta,
    aten.convolution.default: _convolution_meta,
    aten.addmm.default: _addmm_meta,
    aten.cat.default: _cat_meta,
    aten.mean.dim: _mean_meta,
    aten.native_layer_norm.default: _layer_norm_meta,
}

__all__ = ["FAST_META"]
