"""A shape cache for the meta device: an op seen before with the same argument metadata is answered
without running its meta kernel again.

On the meta device nothing is computed, yet a forward pass is not free: many meta kernels are
Python decompositions (the plain cases of the costliest are answered directly:
:mod:`torchscope._flops.metakernels`). Their outputs
depend only on the arguments' shapes, strides and dtypes and on the other arguments' values, so
for a *functional* op (no mutated or aliased argument, tensors out) whose tensor arguments are all
on meta, the output metadata is remembered per ``(op, arguments)`` and rebuilt with
``empty_strided``. This is torch's own FakeTensor dispatch cache in miniature; the cache is
process-wide and bounded.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from torchscope._flops.metakernels import FAST_META

_MAX_ENTRIES = 16_384
_WORTH_CACHING_S = 25e-6  # a miss faster than this is not worth a key
_CACHE: dict[Any, Any] = {}
_CACHEABLE: dict[Any, int] = {}
_SAME = ("same",)  # the spec of an in-place op: its first argument, unchanged
_SCALARS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)


_FUNCTIONAL, _IN_PLACE = 1, 2


def _kind(func: Any) -> int:
    """The op's :func:`op_kind`, or 0 once a miss showed its meta kernel is too fast to cache."""
    kind = _CACHEABLE.get(func)
    if kind is None:
        kind = _CACHEABLE[func] = op_kind(func)
    return kind


def op_kind(func: Any) -> int:
    """_FUNCTIONAL (fresh tensors out), _IN_PLACE (mutates and returns its first argument) or 0."""
    schema = func._schema
    kind = 0
    plain = (
        bool(schema.returns)
        and func is not torch.ops.aten._local_scalar_dense.default
        and torch.Tag.dynamic_output_shape not in func.tags
        and torch.Tag.data_dependent_output not in func.tags
    )
    returns_tensors = all(str(r.type) in ("Tensor", "List[Tensor]", "Tensor[]") for r in schema.returns)
    if (
        plain
        and returns_tensors
        and not schema.is_mutable
        and all(r.alias_info is None for r in schema.returns)
    ):
        kind = _FUNCTIONAL
    elif plain and len(schema.returns) == 1 and schema.arguments:
        first, out = schema.arguments[0].alias_info, schema.returns[0].alias_info
        others_written = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments[1:])
        if (
            first is not None and first.is_write and out is not None
            and set(out.before_set) == set(first.before_set) and not others_written
            and str(schema.returns[0].type) == "Tensor"
            and torch.Tag.pointwise in func.tags  # never resize_, set_, transpose_: they change metadata
            and torch.Tag.inplace_view not in func.tags
        ):  # fmt: skip
            kind = _IN_PLACE  # x.add_(y), relu_: same tensor out, metadata unchanged
    return kind


_DIRECT: dict[Any, bool] = {}
# the metadata queries FlopCounterMode answers NotImplemented (nested tensors' own rules apply)
_QUERIES = frozenset(
    "sym_is_contiguous is_contiguous is_strides_like_format is_non_overlapping_and_dense size sym_size "
    "stride sym_stride storage_offset sym_storage_offset numel sym_numel dim layout".split()
)
# the same, as the overloads FlopCounterMode's dispatch lists (by name: making some of their
# packets costs time, and most never run)
_QUERY_NAMES = frozenset(
    f"aten::{n}"
    for n in (
        "sym_is_contiguous is_contiguous is_contiguous.memory_format is_strides_like_format "
        "is_non_overlapping_and_dense size sym_size stride sym_stride storage_offset sym_storage_offset "
        "numel sym_numel dim"
    ).split()
) | {"prim::layout"}
_IS_QUERY: dict[Any, bool] = {}
_DEVICE = torch.ops.prim.device.default


def _direct(func: Any) -> bool:
    """Whether ``func`` can run as is: no CompositeImplicitAutograd decomposition, not a metadata query."""
    direct = _DIRECT.get(func)
    if direct is None:
        direct = _DIRECT[func] = not (
            torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")
            or func._schema.name.split("::")[-1] in _QUERIES
        )
    return direct


_EXACT = frozenset(_SCALARS)
_TENSOR, _STRIDED = torch.Tensor, torch.strided


def _key(value: Any) -> Any:
    # the common cases first, by exact type: this runs on every argument of every op
    tp = type(value)
    if tp in _EXACT:
        return (tp, value)  # (bool, True) != (int, 1): the type is part of the key
    if isinstance(value, _TENSOR):
        if not value.is_meta or value.layout is not _STRIDED or value.is_nested:
            raise _Uncacheable
        return (value.shape, value.stride(), value.dtype)
    if isinstance(value, (list, tuple)):
        return tuple([_key(v) for v in value])
    if isinstance(value, _SCALARS):
        return (tp, value)
    raise _Uncacheable


class _Uncacheable(Exception):
    pass


def cache_key(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The key of one call, or None when it cannot be answered from metadata."""
    if not _kind(func):
        return None
    if args and isinstance(args[0], torch.Tensor) and not args[0].is_meta:
        return None  # a real device: nothing to save (checked first, it is the common case there)
    device = kwargs.get("device") if kwargs else None
    if device is not None and getattr(device, "type", device) != "meta":
        return None  # a factory op (empty, zeros) making a real tensor: its output is never cached
    try:
        return (func, _key(args), _key(tuple(sorted(kwargs.items()))) if kwargs else ())
    except _Uncacheable:
        return None


def _spec(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        if out.device.type != "meta" or out.layout != torch.strided:
            return None
        return (tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, (list, tuple)):
        parts = [_spec(o) for o in out]
        return None if any(p is None for p in parts) else (type(out), parts)
    return None


def _build(spec: Any) -> Any:
    if isinstance(spec[0], type):
        kind, parts = spec
        return kind(_build(p) for p in parts)
    shape, stride, dtype = spec
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


def _first_on_meta(args: tuple[Any, ...]) -> bool:
    first = args[0] if args else None
    if isinstance(first, (list, tuple)):  # cat, stack: a list of tensors
        first = first[0] if first else None
    return isinstance(first, _TENSOR) and first.is_meta


def _torch_mode() -> Any:
    # torch's dispatch mode of FlopCounterMode, for the higher-order operators only (torch.cond,
    # triton kernels): imported when one runs, it is a heavy import the summary never needs else
    from torch.utils.flop_counter import _FlopCounterMode

    return _FlopCounterMode


class CachingFlopMode(TorchDispatchMode):
    """FlopCounterMode's dispatch mode, answering repeated meta ops from the shape cache.

    As torch's: metadata queries are left to the tensor (NotImplemented), an op with no formula
    decomposes inside the mode where it can (its parts are counted), higher-order operators go to
    torch's handler. A hit also reuses the FLOP count computed for the same key (a formula on meta
    tensors reads only their metadata, which the key holds), so counts are those of a full run.
    """

    supports_higher_order_operators = True

    def __init__(self, counter: Any) -> None:
        super().__init__()
        self.counter = counter  # our MacCounter

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # no torch._disable_dynamo wrapper around every op's dispatch: this frame calls nothing
        # compiled (the ops it runs are plain aten calls), and the wrapper costs microseconds per op
        return False

    def _execute_with_isolated_flop_counting(self, branch_fn: Any, operands: Any) -> Any:
        return _torch_mode()._execute_with_isolated_flop_counting(self, branch_fn, operands)

    def _torch_dispatch(self, func: Any, args: Any, kwargs: Any) -> Any:
        """``_FlopCounterMode.__torch_dispatch__`` for an op that is not a higher-order operator."""
        query = _IS_QUERY.get(func)
        if query is None:
            query = _IS_QUERY[func] = func.name() in _QUERY_NAMES
        if query:
            return NotImplemented
        counter: Any = self.counter
        if func not in counter.flop_registry and func is not _DEVICE:
            with self:
                r = func.decompose(*args, **kwargs)
                if r is not NotImplemented:
                    return r
        out = func(*args, **kwargs)
        counter.count_op(func._overloadpacket, out, args, kwargs)
        return out

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            return _torch_mode()._handle_higher_order_ops(self, func, types, args, kwargs)
        key = cache_key(func, args, kwargs)
        counter: Any = self.counter  # our MacCounter
        if key is not None:
            entry = _CACHE.get(key)
            if entry is not None:
                spec, flops, formulas = entry
                out = args[0] if spec is _SAME else _build(spec)
                # on meta the formula reads only what the key holds (no values): its answer is the same
                known = flops if formulas is counter.flop_registry else None
                counted = counter.count_op(func._overloadpacket, out, args, kwargs, known)
                if counted is not None and known is None:
                    _CACHE[key] = (spec, counted, counter.flop_registry)
                return out
        start = time.perf_counter()
        flops = None
        fast = FAST_META.get(func)
        out = None
        if fast is not None and not kwargs and _first_on_meta(args):
            out = fast(*args)  # None where the case is not plain: torch's kernel answers
        if out is not None:
            flops = counter.count_op(func._overloadpacket, out, args, kwargs)
        elif _direct(func):
            # no decomposition to try (FlopCounterMode re-enters the mode for that on every op)
            out = func(*args, **kwargs)
            flops = counter.count_op(func._overloadpacket, out, args, kwargs)
        else:
            out = self._torch_dispatch(func, args, kwargs)
        if key is not None and time.perf_counter() - start < _WORTH_CACHING_S:
            # a C++ meta kernel or one of FAST_META's answers: computing the key costs more than it saves
            _CACHEABLE[func] = 0
        elif key is not None and out is not NotImplemented:
            # an in-place op that succeeded once with this metadata returns its first argument again
            spec = _SAME if _kind(func) == _IN_PLACE and out is args[0] else _spec(out)
            if spec is not None:
                if len(_CACHE) >= _MAX_ENTRIES:
                    _CACHE.clear()
                _CACHE[key] = (spec, flops, counter.flop_registry)
        return out


def clear() -> None:
    """Forget every cached shape (benchmarks time cold runs with it)."""
    _CACHE.clear()
