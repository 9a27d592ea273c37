"""Exact multiply-accumulate counts at the dispatcher level.

:class:`MacCounter` counts what torch's ``FlopCounterMode`` counts (its formula table:
:mod:`torchscope._flops.formulas`), plus formulas for the kernels it misses (see
:data:`EXTRA_FORMULAS`: attention fast paths, the fused transformer encoder layer, the fused recurrent
kernels, matrix-vector and dot products), with every aten op classified
(:func:`~torchscope._flops.ops.classify`) and reported to a callback, so a caller can attribute counts
to the module running and list the ops whose arithmetic no formula counted.

FlopCounterMode counts FLOPs as 2 per multiply-add; torchvision's published ``_ops`` ("GFLOPS")
are multiply-accumulates, so MACs = FLOPs / 2.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

from torchscope._flops.formulas import raw, registry, sdpa_backward_count, sdpa_count
from torchscope._flops.metacache import CachingFlopMode
from torchscope._flops.ops import OpKind, classify
from torchscope._flops.rnn import RNN_FORMULAS

aten = torch.ops.aten


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape)


def _native_mha_flop(
    query: Any,
    key: Any,
    value: Any,
    embed_dim: int,
    num_head: int,
    *args: Any,
    out_val: Any = None,
    **kw: Any,
) -> int:
    """FLOPs of ``_native_multi_head_attention`` (batch_first (B, L, E) inputs).

    In projections of q, k and v, the two attention matmuls (q k^T and attn v) and the output
    projection; 2 FLOPs per multiply-add, FlopCounterMode's convention.
    """
    b, lq, e = _shape(query)
    s = _shape(key)[1]
    macs = b * lq * e * e  # q projection
    macs += 2 * b * s * e * e  # k and v projections
    macs += 2 * b * lq * s * e  # q @ k^T and attn @ v, summed over heads
    macs += b * lq * e * e  # output projection
    return 2 * macs


def _sequence_lengths(src: Any) -> list[int]:
    # a nested tensor (TransformerEncoder with a padding mask) holds only the real tokens
    if getattr(src, "is_nested", False):
        return [int(s[0]) for s in src._nested_tensor_size().tolist()]
    b, length = _shape(src)[:2]
    return [length] * b


def _encoder_layer_flop(
    src: Any,
    embed_dim: int,
    num_heads: int,
    qkv_weight: Any,
    qkv_bias: Any,
    proj_weight: Any,
    proj_bias: Any,
    use_gelu: bool,
    norm_first: bool,
    eps: float,
    nw1: Any,
    nb1: Any,
    nw2: Any,
    nb2: Any,
    ffn_weight_1: Any,
    *args: Any,
    out_val: Any = None,
    **kw: Any,
) -> int:
    """``_transformer_encoder_layer_fwd``, nn.TransformerEncoderLayer's fused eval path.

    Per token: the q/k/v and output projections and the two feed-forward matmuls; per sequence of
    length L: q k^T and attn v, 2 L^2 E. Padded tokens of a nested batch are not computed, not counted.
    """
    e = int(embed_dim)
    ffn = int(_shape(ffn_weight_1)[0])
    lengths = _sequence_lengths(src)
    per_token = 4 * e * e + 2 * e * ffn
    macs = sum(length * per_token + 2 * length * length * e for length in lengths)
    return 2 * macs


def _sdpa_cpu_flop(query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return sdpa_count(_shape(query), _shape(key), _shape(value))


def _sdpa_cpu_backward_flop(
    grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kw: Any
) -> int:
    return sdpa_backward_count(_shape(grad_out), _shape(query), _shape(key), _shape(value))


def _mv_flop(a: Any, v: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return 2 * a.numel()  # (n, m) @ (m,): n*m MACs


def _addmv_flop(bias: Any, a: Any, v: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return 2 * a.numel()


def _dot_flop(a: Any, b: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return 2 * a.numel()


def _addr_flop(bias: Any, v1: Any, v2: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return 2 * v1.numel() * v2.numel()  # an outer product accumulated into bias


def _addbmm_flop(bias: Any, b1: Any, b2: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    b, n, m = _shape(b1)
    return 2 * b * n * m * _shape(b2)[-1]


def _mm_like_flop(a: Any, b: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    # (m, k) @ (k, n) for _int_mm; int8/int4 packed weights have odd shapes, the output has (m, n)
    k = int(_shape(a)[-1])
    return 2 * (a.numel() // k) * k * int(_shape(out_val)[-1])


def _addmm_activation_flop(bias: Any, a: Any, b: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _mkldnn_linear_flop(x: Any, weight: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return 2 * (x.numel() // x.shape[-1]) * weight.numel()


def _cdist_flop(x1: Any, x2: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    # every pair of rows: one difference-product per feature
    return 2 * (x1.numel() // x1.shape[-1]) * x2.shape[-2] * x2.shape[-1]


def _conv_tbc_flop(x: Any, weight: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    # input (time, batch, in), weight (kernel, in, out), output (time', batch, out)
    return 2 * (out_val.numel() // out_val.shape[-1]) * weight.numel()


EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    op: raw(f)
    for op, f in {
        aten._native_multi_head_attention: _native_mha_flop,
        aten._transformer_encoder_layer_fwd: _encoder_layer_flop,
        aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop,
        aten._scaled_dot_product_fused_attention_overrideable: _sdpa_cpu_flop,
        aten._scaled_dot_product_fused_attention_overrideable_backward: _sdpa_cpu_backward_flop,
        aten.mv: _mv_flop,
        aten.addmv: _addmv_flop,
        aten.dot: _dot_flop,
        aten.vdot: _dot_flop,
        aten.addr: _addr_flop,
        aten.addbmm: _addbmm_flop,
        aten._int_mm: _mm_like_flop,
        aten._weight_int8pack_mm: _mm_like_flop,
        aten._weight_int4pack_mm: _mm_like_flop,
        aten._addmm_activation: _addmm_activation_flop,
        aten.mkldnn_linear: _mkldnn_linear_flop,
        aten._cdist_forward: _cdist_flop,
        aten.conv_tbc: _conv_tbc_flop,
        **RNN_FORMULAS,
    }.items()
}

OpCallback = Callable[[str, "int | None"], None]

# op packet -> (name, kind, the formula table it was classified against): one lookup per op
_KINDS: dict[Any, tuple[str, OpKind, Any]] = {}


class MacCounter:
    """Counts multiply-accumulates of the aten ops run inside it, classifies every op and reports it
    to ``on_op``: torch's ``FlopCounterMode`` arithmetic with the formulas above.

    ``on_op(name, flops)`` gets ``flops=None`` for a *missing* op (real arithmetic, no formula); ops
    with no multiply-accumulates by nature are not reported. ``kinds`` maps every op that ran to its
    :class:`~torchscope._flops.ops.OpKind`; ``missing`` lists the missing ones. ``flop_registry``
    maps each counted op to its formula (torch's ops and ours).

    >>> seen = []
    >>> with MacCounter(lambda op, f: seen.append((op, f))) as c:
    ...     _ = torch.nn.Linear(4, 3)(torch.randn(2, 4)).relu()
    >>> c.total_macs, seen, c.kinds["aten.relu"].value
    (24, [('aten.addmm', 48)], 'zero-cost')
    """

    def __init__(self, on_op: OpCallback | None = None, *, count: bool = True) -> None:
        self.flop_registry = registry(EXTRA_FORMULAS)
        self._on_op = on_op
        self._count = count  # False: only run (the meta shape cache), classify and count nothing
        self._macs: dict[str, int] = {}
        self.kinds: dict[str, OpKind] = {}
        # per module name, per op: FlopCounterMode's table, which torch's handler of torch.cond
        # reads and merges (our own attribution goes through ``on_op``)
        self.flop_counts: dict[str, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
        self.mode: CachingFlopMode | None = None

    def __enter__(self) -> MacCounter:
        # not reentrant, as FlopCounterMode; no module tracker (we attribute through our own hooks)
        self._macs.clear()
        self.kinds.clear()
        self.flop_counts.clear()
        self.mode = CachingFlopMode(self)
        self.mode.__enter__()
        return self

    def __exit__(self, *args: Any) -> Any:
        mode, self.mode = self.mode, None
        return mode.__exit__(*args) if mode is not None else None

    def get_total_flops(self) -> int:
        """FLOPs counted, 2 per multiply-accumulate (FlopCounterMode's name)."""
        return sum(self._macs.values())

    @property
    def total_macs(self) -> int:
        return sum(self._macs.values()) // 2

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(sorted(op for op, kind in self.kinds.items() if kind is OpKind.MISSING))

    def macs_by_op(self) -> dict[str, int]:
        """Multiply-accumulates per aten op over the whole run."""
        return {op: flops // 2 for op, flops in self._macs.items()}

    def _count_flops(self, func_packet: Any, out: Any, args: Any, kwargs: Any) -> Any:
        self.count_op(func_packet, out, args, kwargs)
        return out

    def count_op(self, packet: Any, out: Any, args: Any, kwargs: Any, flops: int | None = None) -> int | None:
        """Classify and record one op; its FLOPs when it is counted (``flops``: already known from
        an identical call, the formula is not run again), else None."""
        if not self._count:
            return None
        known = _KINDS.get(packet)
        if known is None or known[2] is not self.flop_registry:
            known = _KINDS[packet] = (str(packet), classify(packet, self.flop_registry), self.flop_registry)
        name, kind, _ = known
        self.kinds[name] = kind
        if kind is OpKind.COUNTED:
            if flops is None:
                flops = int(self.flop_registry[packet](*args, **kwargs, out_val=out))
            self._macs[name] = self._macs.get(name, 0) + flops
            if self._on_op is not None:
                self._on_op(name, flops)
            return flops
        if kind is OpKind.MISSING and self._on_op is not None:
            self._on_op(name, None)
        return None
