"""Which aten ops carry multiply-accumulates: counted, zero by nature, or missing a formula.

A multiply-accumulate (MAC) is one product added into a sum over a contracted dimension: matmuls,
convolutions, attention, recurrent layers, dot products. That is what ``total_mult_adds`` counts, the
unit of torchvision's published ``_ops``. Every other op has **zero** MACs by nature, and is not a
gap in the count:

- *data movement*: views, reshapes, copies, concatenation, indexing, padding, creation, RNG;
- *elementwise and reductions*: activations, adds and products of same-shaped tensors, comparisons,
  normalisation (batch/layer/group norm), softmax, pooling, interpolation, sums and means. Each
  output element costs O(1) operations per input element read, not a contraction.

An op that is neither counted nor in those two classes is **missing**: it may do real MAC arithmetic
with no formula (``_trilinear``, ``linalg_solve``, an unknown custom op), so a total that ran one is
only a lower bound. :func:`classify` decides; the lists are explicit, plus torch's own op tags
(``pointwise``, ``reduction``, ``nondeterministic_seeded``, views).
"""

from __future__ import annotations

from enum import Enum
from functools import cache
from typing import Any

import torch


class OpKind(str, Enum):
    """How an aten op enters ``total_mult_adds``."""

    COUNTED = "counted"  # has a formula
    ZERO = "zero-cost"  # no multiply-accumulates by nature (data movement, elementwise, reductions)
    MISSING = "missing"  # may do real MAC arithmetic and has no formula: the total is a lower bound


def _names(text: str) -> frozenset[str]:
    return frozenset(f"aten.{n}" for n in text.split())


# Ops that only move, reshape, create or index data.
DATA_MOVEMENT: frozenset[str] = _names(
    "view _unsafe_view reshape _reshape_alias permute transpose t expand expand_as unsqueeze squeeze "
    "select slice narrow detach alias clone _to_copy copy_ copy empty empty_like empty_strided "
    "zeros zeros_like ones ones_like full full_like new_empty new_empty_strided new_zeros new_ones "
    "new_full fill fill_ zero_ as_strided as_strided_ contiguous split split_with_sizes unbind chunk cat "
    "stack flatten lift_fresh lift_fresh_copy arange _local_scalar_dense scalar_tensor unfold roll flip "
    "index_select index gather constant_pad_nd pad repeat set_ resize_ unsafe_split "
    "unsafe_split_with_sizes unsafe_chunk movedim _to_dense to lift detach_ _unsafe_index slice_scatter "
    "select_scatter as_strided_scatter diagonal_scatter channel_shuffle pixel_shuffle pixel_unshuffle "
    "native_channel_shuffle uniform_ normal_ random_ bernoulli bernoulli_ rand rand_like randn randn_like "
    "randint randint_like randperm native_dropout dropout scatter scatter_ scatter_add scatter_add_ "
    "index_put index_put_ index_copy index_fill masked_select masked_scatter nonzero im2col col2im "
    "reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d replication_pad2d "
    "replication_pad3d _pad_circular embedding tril triu tril_ triu_ diagonal diag_embed diag "
    "linspace logspace eye tile repeat_interleave _nested_tensor_from_mask "
    "_nested_tensor_from_mask_left_aligned to_padded_tensor _nested_tensor_from_tensor_list "
    "masked_fill masked_fill_ where clamp_ _unsafe_masked_index lift_fresh_copy view_as_real "
    "view_as_complex real imag _conj _neg_view resolve_conj resolve_neg unfold_copy split_copy "
    "expand_copy view_copy permute_copy t_copy transpose_copy unsqueeze_copy squeeze_copy "
    "select_copy slice_copy alias_copy detach_copy sort argsort topk kthvalue unique_consecutive "
    "_unique2 searchsorted bucketize one_hot _pack_padded_sequence _pad_packed_sequence"
)

# Elementwise ops, normalisation, softmax, pooling, interpolation and reductions: no contraction.
NO_CONTRACTION: frozenset[str] = _names(
    "native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training "
    "_native_batch_norm_legit_functional batch_norm cudnn_batch_norm miopen_batch_norm "
    "native_layer_norm native_group_norm _fused_rms_norm rms_norm instance_norm layer_norm group_norm "
    "_softmax _log_softmax _safe_softmax softmax log_softmax "
    "max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices "
    "avg_pool1d avg_pool2d avg_pool3d _adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_avg_pool1d "
    "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d fractional_max_pool2d "
    "lp_pool1d lp_pool2d mkldnn_max_pool2d "
    "upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d "
    "_upsample_nearest_exact2d _upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d "
    "upsample_trilinear3d upsample_bicubic2d _upsample_bilinear2d_aa _upsample_bicubic2d_aa "
    "grid_sampler_2d grid_sampler_3d affine_grid_generator "
    "hardswish hardswish_ hardsigmoid hardsigmoid_ hardtanh hardtanh_ gelu gelu_ silu silu_ mish mish_ "
    "elu elu_ selu selu_ celu celu_ leaky_relu leaky_relu_ rrelu_with_noise softplus softshrink "
    "hardshrink glu logsigmoid log_sigmoid_forward _prelu_kernel prelu threshold threshold_ rsub "
    "_thnn_fused_lstm_cell _thnn_fused_gru_cell "
    "sum mean amax amin max min var std var_mean std_mean prod norm linalg_vector_norm "
    "argmax argmin logsumexp cumsum cumprod all any count_nonzero nansum "
    "_masked_softmax _transform_bias_rescale_qkv _fused_dropout"
)

# Tags torch puts on ops with no contraction: elementwise, reductions, RNG, views.
_ZERO_TAGS = frozenset(
    t
    for t in (
        getattr(torch.Tag, "pointwise", None),
        getattr(torch.Tag, "reduction", None),
        getattr(torch.Tag, "nondeterministic_seeded", None),
        getattr(torch.Tag, "inplace_view", None),
        getattr(torch.Tag, "view_copy", None),
    )
    if t is not None
)


def is_zero_cost(name: str, packet: Any = None) -> bool:
    """Whether the op named ``name`` (``aten.relu``) has no multiply-accumulates by nature."""
    if name in DATA_MOVEMENT or name in NO_CONTRACTION:
        return True
    if packet is None or not hasattr(packet, "overloads"):
        return False
    return _tagged_zero(packet)


@cache
def _tagged_zero(packet: Any) -> bool:
    try:
        for overload in packet.overloads():
            if _ZERO_TAGS.intersection(getattr(packet, overload).tags):
                return True
    except (AttributeError, RuntimeError):
        return False
    return False


def classify(packet: Any, formulas: Any) -> OpKind:
    """The :class:`OpKind` of an op packet given the formula table (``packet in formulas``)."""
    if packet in formulas:
        return OpKind.COUNTED
    return OpKind.ZERO if is_zero_cost(str(packet), packet) else OpKind.MISSING
