"""Exact multiply-accumulate counts at the dispatcher level.

:class:`MacCounter` is torch's ``FlopCounterMode`` with the attention kernels it misses given a
formula (``nn.MultiheadAttention``'s fused fast path ``_native_multi_head_attention`` and the CPU /
fused ``scaled_dot_product_attention`` kernels), and with every aten op reported to a callback, so a
caller can attribute counts to the module running and list the ops that had no formula.

FlopCounterMode counts FLOPs as 2 per multiply-add; torchvision's published ``_ops`` ("GFLOPS")
are multiply-accumulates, so MACs = FLOPs / 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten

# Ops that only move or reshape data: "not counted" is their correct value, so listing them as
# uncounted would hide the ops that really do arithmetic nobody counted.
DATA_MOVEMENT: frozenset[str] = frozenset(
    f"aten.{n}"
    for n in (
        "view _unsafe_view reshape _reshape_alias permute transpose t expand expand_as unsqueeze squeeze "
        "select slice narrow detach alias clone _to_copy copy_ copy empty empty_like empty_strided "
        "zeros zeros_like ones ones_like full full_like new_empty new_zeros new_ones new_full fill_ zero_ "
        "as_strided contiguous split split_with_sizes unbind chunk cat stack flatten lift_fresh "
        "lift_fresh_copy arange _local_scalar_dense scalar_tensor unfold roll flip index_select "
        "index gather constant_pad_nd pad repeat set_ resize_ unsafe_split unsafe_chunk movedim "
        "_to_dense to lift detach_ _unsafe_index slice_scatter select_scatter channel_shuffle "
        "pixel_shuffle uniform_ normal_ random_"
    ).split()
)


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


def _sdpa_cpu_flop(query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return int(sdpa_flop_count(_shape(query), _shape(key), _shape(value)))


def _sdpa_cpu_backward_flop(
    grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kw: Any
) -> int:
    return int(sdpa_backward_flop_count(_shape(grad_out), _shape(query), _shape(key), _shape(value)))


def _raw(f: Callable[..., int]) -> Callable[..., int]:
    # get_raw: FlopCounterMode passes the tensors themselves (not their shapes); our formulas read
    # the shapes they need and ignore the optional arguments, which may be None.
    f._get_raw = True  # type: ignore[attr-defined]
    return f


EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    aten._native_multi_head_attention: _raw(_native_mha_flop),
    aten._scaled_dot_product_flash_attention_for_cpu: _raw(_sdpa_cpu_flop),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _raw(_sdpa_cpu_backward_flop),
    aten._scaled_dot_product_fused_attention_overrideable: _raw(_sdpa_cpu_flop),
    aten._scaled_dot_product_fused_attention_overrideable_backward: _raw(_sdpa_cpu_backward_flop),
}

OpCallback = Callable[[str, "int | None"], None]


class MacCounter(FlopCounterMode):
    """FlopCounterMode that also counts attention and reports every op to ``on_op(name, flops)``.

    ``flops`` is None for an op with no formula (and not pure data movement).

    >>> seen = []
    >>> with MacCounter(lambda op, f: seen.append((op, f))) as c:
    ...     _ = torch.nn.Linear(4, 3)(torch.randn(2, 4))
    >>> c.total_macs
    24
    """

    def __init__(self, on_op: OpCallback | None = None) -> None:
        super().__init__(display=False, custom_mapping=EXTRA_FORMULAS)
        self._on_op = on_op

    @property
    def total_macs(self) -> int:
        return int(self.get_total_flops()) // 2

    def macs_by_op(self) -> dict[str, int]:
        """Multiply-accumulates per aten op over the whole run."""
        return {str(k): int(v) // 2 for k, v in self.flop_counts.get("Global", {}).items()}

    def _count_flops(self, func_packet: Any, out: Any, args: Any, kwargs: Any) -> Any:
        if self._on_op is not None:
            name = str(func_packet)
            if func_packet in self.flop_registry:
                flops = int(self.flop_registry[func_packet](*args, **kwargs, out_val=out))
                self._on_op(name, flops)
                # the global tally (Global and per-module tables) as FlopCounterMode keeps it
                for par in set(self.mod_tracker.parents):
                    self.flop_counts[par][func_packet] += flops
                return out
            if name not in DATA_MOVEMENT:
                self._on_op(name, None)
            return out
        return super()._count_flops(func_packet, out, args, kwargs)
