"""Live tensor storage over time: a dispatch mode that sees every storage an op creates.

Every op's outputs pass through :class:`StorageTracker`. A storage seen for the first time is an
allocation; a weak reference on its Python object tells when the last tensor using it died (a free).
Storages are counted once by identity, so views, in-place ops and tied weights cost nothing extra.

Sizes are rounded the way the target device's allocator rounds a request (:func:`allocator_rounding`):
the CUDA caching allocator hands out blocks in multiples of 512 bytes (``kMinBlockSize`` in
``c10/cuda/CUDACachingAllocator.cpp``), so ``torch.cuda.max_memory_allocated()`` counts a 4-byte tensor
as 512 bytes; on the CPU we count the storage's own bytes, which is what the truth measures there.

The tracker never keeps a tensor or storage alive: it keeps a weak reference and a small record.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from torchscope._memory.schema import KINDS

CUDA_BLOCK = 512
"""Bytes of the CUDA caching allocator's smallest block; every allocation is a multiple of it."""


def allocator_rounding(device_type: str) -> int:
    """The granularity (bytes) one allocation of ``device_type`` occupies.

    >>> allocator_rounding("cuda"), allocator_rounding("cpu")
    (512, 1)
    """
    return CUDA_BLOCK if device_type == "cuda" else 1


def rounded(nbytes: int, block: int) -> int:
    """``nbytes`` rounded up to the allocator's block; an empty storage allocates nothing.

    >>> rounded(4, 512), rounded(513, 512), rounded(0, 512), rounded(7, 1)
    (512, 1024, 0, 7)
    """
    if nbytes <= 0:
        return 0
    return -(-nbytes // block) * block


@dataclass(slots=True)
class Allocation:
    """One storage's life: its bytes, when it was born and died (tracker clock), and what it is."""

    nbytes: int
    raw: int  # the storage's own bytes, before the allocator's rounding
    born: int
    phase: str
    module: str
    op: str
    died: int = -1
    kind: str = "temporaries"
    owner: str = ""  # module owning a parameter/gradient/state, set when the kind is claimed

    def live_at(self, clock: int) -> bool:
        return self.born <= clock and (self.died < 0 or self.died > clock)


@dataclass(slots=True)
class Failure:
    """The innermost op that raised an exception: its name, the module running it, the phase.

    The exception itself is not kept (its traceback would keep the step's tensors alive, and a
    model may catch it and go on): only its id and text, enough to recognise it when it ends the step.
    """

    op: str
    module: str
    phase: str
    exc_id: int
    exc_text: str

    def of(self, exc: BaseException) -> bool:
        """Whether this failure is ``exc`` or what caused it (torch may wrap the op's exception)."""
        seen: BaseException | None = exc
        for _ in range(8):
            if seen is None:
                return False
            if id(seen) == self.exc_id and str(seen) == self.exc_text:
                return True
            seen = seen.__cause__ or seen.__context__
        return False


class StorageTracker(TorchDispatchMode):
    """Record every storage created on ``device_type`` while active, with birth, death and context.

    ``phase`` and ``module`` are set by the step driver (hooks); the tracker stamps them on each new
    storage. ``live`` is the current total; the timeline (and its peak) is swept from
    ``allocations`` afterwards (:meth:`~torchscope._memory.fake_step.Trace.evaluate`), so that claims made
    later (a step counter kept on the host) count.
    """

    def __init__(self, device_type: str, block: int) -> None:
        super().__init__()
        self.device_type = device_type
        self.block = block
        self.allocations: list[Allocation] = []
        self.by_storage: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.clock = 0
        self.live = 0
        self.phase = "forward"
        self.module = "(outside)"
        self.op = ""
        self.failure: Failure | None = None
        self.where: Callable[[], str] = lambda: self.module

    # -- storages --------------------------------------------------------------------------
    def record(self, tensor: torch.Tensor, *, kind: str | None = None, owner: str = "") -> Allocation | None:
        """The allocation behind ``tensor``'s storage, registered now if it is new."""
        if tensor.device.type != self.device_type:
            return None
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse, nested, ...: no single storage
            return None
        alloc: Allocation | None = self.by_storage.get(storage)
        if alloc is None:
            raw = storage.nbytes()
            nbytes = rounded(raw, self.block)
            alloc = Allocation(nbytes, raw, self.clock, self.phase, self.module, self.op)
            self.allocations.append(alloc)
            self.by_storage[storage] = alloc
            weakref.finalize(storage, self._free, alloc)
            self._grow(nbytes)
        else:
            nbytes = rounded(storage.nbytes(), self.block)
            if nbytes != alloc.nbytes and alloc.died < 0:  # resize_ grew (or shrank) it in place
                self._grow(nbytes - alloc.nbytes)
                alloc.nbytes, alloc.raw = nbytes, storage.nbytes()
        if kind is not None and KINDS.index(kind) < KINDS.index(alloc.kind):
            alloc.kind = kind
            alloc.owner = owner or alloc.owner
        return alloc

    def claim(self, tensor: torch.Tensor, kind: str, owner: str = "") -> None:
        """Mark ``tensor``'s storage as ``kind`` (a gradient, optimizer state, saved activation)."""
        self.record(tensor, kind=kind, owner=owner)

    def _grow(self, nbytes: int) -> None:
        self.live += nbytes
        self.clock += 1

    def _free(self, alloc: Allocation) -> None:
        if alloc.died < 0:
            alloc.died = self.clock
            self.live -= alloc.nbytes
            self.clock += 1

    # -- dispatch --------------------------------------------------------------------------
    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        self.op = func._overloadpacket.__name__
        try:
            out = func(*args, **(kwargs or {}))
        except Exception as exc:
            if self.failure is None or not self.failure.of(exc):  # the innermost op that raised it
                self.failure = Failure(str(func._overloadpacket), self.where(), self.phase, id(exc), str(exc))
            raise
        if isinstance(out, torch.Tensor):
            self.record(out)
        elif isinstance(out, tuple | list):
            for item in _tensors(out):
                self.record(item)
        return out


def _tensors(items: Iterable[Any]) -> Iterable[torch.Tensor]:
    for item in items:
        if isinstance(item, torch.Tensor):
            yield item
        elif isinstance(item, tuple | list):
            yield from _tensors(item)
