"""The FLOP formulas of torch's ``flop_registry``, ours for the common ops, torch's for the rest.

``torch.utils.flop_counter`` costs milliseconds to import (its module tracker and torch's whole
formula table), and a summary of an ordinary model needs a dozen formulas of it: matmuls,
convolutions and attention. Those are written here with torch's arithmetic (each equal to torch's
over random shapes: ``tests/test_flops_formulas.py``) and called with the tensors themselves.
The others (``_scaled_mm``, the CUDA attention kernels with nested inputs, flex attention) keep
torch's formula, imported the first time such an op runs. :data:`TORCH_FORMULA_NAMES` lists the
ops of torch's table (a test holds it to the installed torch's), so that the table is complete
without importing it; formulas a user registered with ``register_flop_formula`` join it once
torch's module has been imported (it must be, to register one).

Values are FLOPs, 2 per multiply-add, torch's unit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from math import prod
from typing import Any

import torch
from torch._higher_order_ops.flex_attention import flex_attention, flex_attention_backward

aten = torch.ops.aten

Formula = Callable[..., int]

# str() of every key of torch.utils.flop_counter.flop_registry in the torch this was written for
TORCH_FORMULA_NAMES: frozenset[str] = frozenset(
    f"aten.{n}"
    for n in (
        "mm addmm bmm baddbmm _scaled_mm convolution _convolution cudnn_convolution "
        "_slow_conv2d_forward convolution_overrideable convolution_backward "
        "_scaled_dot_product_efficient_attention _scaled_dot_product_flash_attention "
        "_scaled_dot_product_cudnn_attention _scaled_dot_product_efficient_attention_backward "
        "_scaled_dot_product_flash_attention_backward _scaled_dot_product_cudnn_attention_backward "
        "_flash_attention_forward _efficient_attention_forward _flash_attention_backward "
        "_efficient_attention_backward"
    ).split()
) | {"flex_attention", "flex_attention_backward"}


def raw(f: Formula) -> Formula:
    """Mark a formula as one called with the tensors themselves (torch's ``get_raw``)."""
    f._get_raw = True  # type: ignore[attr-defined]
    return f


def mm_count(a: Sequence[int], b: Sequence[int]) -> int:
    """FLOPs of ``(m, k) @ (k, n)``."""
    m, k = a
    k2, n = b
    if k != k2:
        raise AssertionError(f"matmul: inner dimensions must match (k == k2), got {k} and {k2}")
    return m * n * 2 * k


def bmm_count(a: Sequence[int], b: Sequence[int]) -> int:
    """FLOPs of ``(b, m, k) @ (b, k, n)``."""
    nb, m, k = a
    nb2, k2, n = b
    if nb != nb2:
        raise AssertionError(f"bmm: batch dimensions must match (b == b2), got {nb} and {nb2}")
    if k != k2:
        raise AssertionError(f"bmm: inner dimensions must match (k == k2), got {k} and {k2}")
    return nb * m * n * 2 * k


def conv_count(x: Sequence[int], w: Sequence[int], out: Sequence[int], transposed: Any = False) -> int:
    """FLOPs of a convolution: every output point (input point when transposed) times the filter
    taps times batch, output and input channels (per group, as the weight holds them)."""
    return prod((x if transposed else out)[2:]) * prod(w[2:]) * x[0] * w[0] * w[1] * 2


def sdpa_count(q: Sequence[int], k: Sequence[int], v: Sequence[int]) -> int:
    """FLOPs of attention, ``(b, h, s_q, d) x (b, h_kv, s_k, d) x (b, h_kv, s_k, d_v)``: q k^T and
    attn v; the key/value heads are broadcast to the query's (grouped-query attention)."""
    b, h_q, s_q, d_q = q
    b2, h_kv, s_k, d2 = k
    b3, h3, s3, d_v = v
    if not (b == b2 == b3 and h_kv == h3 and d_q == d2 and s_k == s3):
        raise AssertionError(f"sdpa_flop_count: query/key/value shapes are incompatible: q={q}, k={k}, v={v}")
    if h_q < h_kv or h_q % h_kv != 0:
        raise AssertionError(
            f"sdpa_flop_count: query heads ({h_q}) must be a multiple of key/value heads ({h_kv})"
        )
    n = b * h_q
    return bmm_count((n, s_q, d_q), (n, d_q, s_k)) + bmm_count((n, s_q, s_k), (n, s_k, d_v))


def sdpa_backward_count(g: Sequence[int], q: Sequence[int], k: Sequence[int], v: Sequence[int]) -> int:
    """FLOPs of attention's backward: the scores recomputed and the four gradient matmuls."""
    b, h_q, s_q, d_q = q
    b2, h_kv, s_k, d2 = k
    b3, h3, s3, d_v = v
    b4, h4, s4, d4 = g
    if not (b == b2 == b3 == b4 and h_kv == h3 and h_q == h4):
        raise AssertionError("sdpa_backward_flop_count: batch/heads mismatch among tensors")
    if h_q < h_kv or h_q % h_kv != 0:
        raise AssertionError(
            f"sdpa_backward_flop_count: query heads ({h_q}) must be a multiple of key/value heads ({h_kv})"
        )
    if not (d_q == d2 and d_v == d4 and s_k == s3 and s_q == s4):
        raise AssertionError("sdpa_backward_flop_count: grad_out/value/key/query shapes are incompatible")
    n = b * h_q
    return (
        bmm_count((n, s_q, d_q), (n, d_q, s_k))
        + bmm_count((n, s_q, d_v), (n, d_v, s_k))
        + bmm_count((n, s_k, s_q), (n, s_q, d_v))
        + bmm_count((n, s_q, s_k), (n, s_k, d_q))
        + bmm_count((n, d_q, s_q), (n, s_q, s_k))
    )


# The formulas take the op's arguments as torch's do (same positions), tensors instead of shapes.


def mm_flop(a: Any, b: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return mm_count(a.shape, b.shape)


def addmm_flop(bias: Any, a: Any, b: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return mm_count(a.shape, b.shape)


def bmm_flop(a: Any, b: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return bmm_count(a.shape, b.shape)


def baddbmm_flop(bias: Any, a: Any, b: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return bmm_count(a.shape, b.shape)


def conv_flop(
    x: Any,
    w: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: Any,
    *args: Any,
    out_val: Any = None,
    **kw: Any,
) -> int:
    # the seventh argument is read as `transposed` for every op of the family, as torch does
    # (cudnn_convolution's is `benchmark`)
    return conv_count(x.shape, w.shape, out_val.shape, transposed)


def _t(shape: Sequence[int]) -> list[int]:
    return [shape[1], shape[0], *shape[2:]]


def conv_backward_flop(
    grad_out: Any,
    x: Any,
    w: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: Any,
    output_padding: Any,
    groups: Any,
    output_mask: Any,
    *args: Any,
    out_val: Any = None,
    **kw: Any,
) -> int:
    """Gradient of the input (a transposed convolution of grad_out with the weight) and of the
    weight (a convolution of the input with grad_out, batch and channels swapped)."""
    g, xs, ws = grad_out.shape, x.shape, w.shape
    flops = 0
    if output_mask[0]:
        flops += conv_count(g, ws, out_val[0].shape, not transposed)
    if output_mask[1]:
        grad_w = out_val[1].shape
        if transposed:
            flops += conv_count(_t(g), _t(xs), _t(grad_w))
        else:
            flops += conv_count(_t(xs), _t(g), _t(grad_w))
    return flops


def sdpa_flop(q: Any, k: Any, v: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return sdpa_count(q.shape, k.shape, v.shape)


def sdpa_backward_flop(g: Any, q: Any, k: Any, v: Any, *args: Any, out_val: Any = None, **kw: Any) -> int:
    return sdpa_backward_count(g.shape, q.shape, k.shape, v.shape)


_WRITTEN: dict[str, Formula] = {
    "aten.mm": mm_flop,
    "aten.addmm": addmm_flop,
    "aten.bmm": bmm_flop,
    "aten.baddbmm": baddbmm_flop,
    "aten.convolution": conv_flop,
    "aten._convolution": conv_flop,
    "aten.cudnn_convolution": conv_flop,
    "aten._slow_conv2d_forward": conv_flop,
    "aten.convolution_overrideable": conv_flop,
    "aten.convolution_backward": conv_backward_flop,
    "aten._scaled_dot_product_efficient_attention": sdpa_flop,
    "aten._scaled_dot_product_flash_attention": sdpa_flop,
    "aten._scaled_dot_product_cudnn_attention": sdpa_flop,
    "aten._scaled_dot_product_efficient_attention_backward": sdpa_backward_flop,
    "aten._scaled_dot_product_flash_attention_backward": sdpa_backward_flop,
    "aten._scaled_dot_product_cudnn_attention_backward": sdpa_backward_flop,
}
# by op name: an op packet is made when first asked for (making some costs a millisecond)
OURS: dict[str, Formula] = {name: raw(f) for name, f in _WRITTEN.items()}


def _shapes(value: Any) -> Any:
    # torch's shape_wrapper does this with pytree, several times slower; a list is converted
    # only when it holds tensors (conv's stride and padding lists do not)
    if isinstance(value, torch.Tensor):
        return value.shape
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        if any(isinstance(v, (torch.Tensor, list, tuple)) for v in value):
            return type(value)(_shapes(v) for v in value)
    return value


def unwrapped(formula: Formula) -> Formula:
    """A formula of torch's table, with its shape wrapper replaced by the faster one above."""
    if getattr(formula, "_get_raw", False) or not hasattr(formula, "__wrapped__"):
        return formula
    inner = formula.__wrapped__

    def shaped(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        return int(
            inner(*_shapes(args), out_shape=_shapes(out_val), **{k: _shapes(v) for k, v in kwargs.items()})
        )

    return shaped


def _torch_formula(op: Any) -> Formula:
    """Torch's formula for ``op``, imported when first needed (and remembered)."""

    def first_call(*args: Any, **kwargs: Any) -> int:
        from torch.utils.flop_counter import flop_registry

        formula = unwrapped(flop_registry[op])
        _RESOLVED[op] = formula
        return formula(*args, **kwargs)

    def lazy(*args: Any, **kwargs: Any) -> int:
        return (_RESOLVED.get(op) or first_call)(*args, **kwargs)

    return lazy


_RESOLVED: dict[Any, Formula] = {}
_HOPS: dict[str, Any] = {"flex_attention": flex_attention, "flex_attention_backward": flex_attention_backward}


def _op(name: str) -> Any:
    return _HOPS.get(name) or getattr(aten, name[len("aten.") :])


def _formula(name: str, op: Any) -> Formula:
    return OURS.get(name) or _torch_formula(op)


class FormulaTable(dict[Any, Formula]):
    """Op -> formula. Torch's ops whose packet Python has not made yet (``aten.cudnn_convolution``
    on a CPU) join when first asked for, so that the table costs no packet it does not use; an op
    that runs has its packet made by then, and is found."""

    def __init__(self, table: dict[Any, Formula], pending: frozenset[str]) -> None:
        super().__init__(table)
        self._pending = set(pending)

    def _adopt(self, op: Any) -> bool:
        name = str(op) if type(op) is _PACKET else None
        if name is None or name not in self._pending:
            return False
        self._pending.discard(name)
        self[op] = _formula(name, op)
        return True

    def _complete(self) -> None:
        for name in sorted(self._pending):
            self._adopt(_op(name))

    def __contains__(self, op: object) -> bool:
        return dict.__contains__(self, op) or (bool(self._pending) and self._adopt(op))

    def __missing__(self, op: Any) -> Formula:
        if self._pending and self._adopt(op):
            return dict.__getitem__(self, op)
        raise KeyError(op)

    def get(self, op: Any, default: Any = None) -> Any:
        return self[op] if op in self else default

    # what walks the whole table sees every op
    def __iter__(self) -> Any:
        self._complete()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def keys(self) -> Any:
        self._complete()
        return dict.keys(self)

    def values(self) -> Any:
        self._complete()
        return dict.values(self)

    def items(self) -> Any:
        self._complete()
        return dict.items(self)


_PACKET = torch._ops.OpOverloadPacket
_BUILT: dict[str, Any] = {}


def registry(extra: dict[Any, Formula]) -> FormulaTable:
    """Torch's table (ours where written, torch's lazily), the formulas a user registered in torch's
    table (once imported), then ``extra`` (ours, for the kernels torch has no formula for).

    The same table is returned until torch's table changes: counts cached per table stay valid.
    """
    module = sys.modules.get("torch.utils.flop_counter")
    torch_table = getattr(module, "flop_registry", None) or {}
    state = (id(extra), id(torch_table), len(torch_table))
    table = _BUILT.get("table")
    if table is None or _BUILT.get("state") != state:
        made = {
            name for name in TORCH_FORMULA_NAMES if name in _HOPS or name[len("aten.") :] in aten.__dict__
        }
        base = {_op(name): _formula(name, _op(name)) for name in made}
        base.update({op: unwrapped(f) for op, f in torch_table.items() if str(op) not in TORCH_FORMULA_NAMES})
        base.update(extra)
        table = FormulaTable(base, TORCH_FORMULA_NAMES - made)
        _BUILT.update(table=table, state=state)
    return table
