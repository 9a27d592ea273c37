"""O(1)-memory fingerprints of tensors, and a tracker that measures what torch ops allocate.

A fingerprint is one 64-bit number per tensor, computed on the tensor's own device without copying
it. Two methods:

- ``"weighted"`` (the default): a sum of the bit patterns times fixed pseudo-random *odd* weights,
  wrapping modulo 2**64, chunk by chunk, each chunk's sum times its own odd multiplier: each 1/2/4-
  byte pattern (8-byte elements: each 4-byte half) zero-extended times a 32-bit weight, exact in 64
  bits (four per AVX2 instruction). An odd weight is invertible modulo 2**64, so a single changed
  element (half) always changes the sum; the weights of a chunk are distinct, so a swap of two
  elements in a chunk, or the same bit flipped in two elements, always changes it; other changes
  cancel out only by chance (~2**-32 for a pair in a chunk). The tensor is read in chunks, so the
  extra memory is O(chunk). On the CPU a fused C kernel (:func:`torchscope._fused.fused_fingerprint`)
  computes the same value in one pass with no temporaries; elsewhere, or without a C compiler, the
  chunked torch reduction does.
- ``"hash"``: ``torch.hash_tensor`` (torch >= 2.10), an XOR reduction of the bit patterns:
  allocation-free on every device (on the CPU no faster than the fused kernel), and a single changed
  element always changes it, but the same bit flipped in an
  even number of elements cancels out. A real SGD step does that (two bias elements each moved by
  one ulp), so ``check_step`` never uses it; it is kept for users who fingerprint single writes.

Fingerprints are kept on the device as int64 tensors and brought to the host together, once.

A definition that changes gets a new algorithm id (:data:`ALGORITHMS`): the weighted sum of 64-bit
patterns was ``torchscope.weighted/1``; the 32-bit halves are ``torchscope.weighted/2``.
:func:`fingerprint` returns :class:`Fingerprint` values, ints that carry their id, and comparing two
of different ids is a :class:`~torchscope.errors.TorchscopeError` that says so (their numbers mean
different things). JSON that stores them stores ``{"algorithm": ..., "value": ...}``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from torchscope._fused import dense, fused_fingerprint, library
from torchscope.errors import TorchscopeError

Method = Literal["auto", "hash", "weighted"]

#: The id of each method's current definition: stored with every fingerprint.
ALGORITHMS: dict[str, str] = {"weighted": "torchscope.weighted/2", "hash": "torch.hash_tensor/1"}
#: The algorithm ``check_step`` uses (``method="auto"``).
ALGORITHM = ALGORITHMS["weighted"]


class Fingerprint(int):
    """A fingerprint: an int that knows its algorithm id; comparing across ids is an error.

    >>> a, b = Fingerprint(7, "torchscope.weighted/2"), Fingerprint(7, "torch.hash_tensor/1")
    >>> a == 7, a == Fingerprint(7, "torchscope.weighted/2")
    (True, True)
    >>> a == b
    Traceback (most recent call last):
    ...
    torchscope.errors.TorchscopeError: cannot compare a torchscope.weighted/2 fingerprint with a torch.hash_tensor/1 one: their values mean different things; fingerprint both with the same method
    """

    algorithm: str

    def __new__(cls, value: int, algorithm: str) -> Fingerprint:
        self = super().__new__(cls, value)
        self.algorithm = algorithm
        return self

    def _same(self, other: object) -> None:
        if isinstance(other, Fingerprint) and other.algorithm != self.algorithm:
            raise TorchscopeError(
                f"cannot compare a {self.algorithm} fingerprint with a {other.algorithm} one: their values "
                "mean different things; fingerprint both with the same method"
            )

    def __eq__(self, other: object) -> bool:
        self._same(other)
        return int(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = int.__hash__

    def __repr__(self) -> str:
        return f"Fingerprint({int(self)}, {self.algorithm!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Fingerprint, (int(self), self.algorithm))

    def to_dict(self) -> dict[str, Any]:
        """``{"algorithm": id, "value": n}``: JSON that keeps the id."""
        return {"algorithm": self.algorithm, "value": int(self)}

    @classmethod
    def from_dict(cls, d: Any) -> Fingerprint:
        """The inverse of :meth:`to_dict`; a dict without an algorithm id is refused."""
        if not isinstance(d, Mapping) or not isinstance(d.get("algorithm"), str):
            raise TorchscopeError(
                f"a stored fingerprint needs its algorithm id, got {d!r}; store Fingerprint.to_dict()"
            )
        value = d.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            raise TorchscopeError(f"a stored fingerprint's value must be an int, got {value!r}")
        return cls(value, d["algorithm"])

# Elements read per chunk by the weighted method: 2 int64 buffers of this length (the widened chunk,
# multiplied in place, and the cached weights) are alive at once, 128 KiB in all.
CHUNK = 1 << 13
_GOLDEN = 0x9E3779B97F4A7C15  # odd: multiplying by it is a bijection modulo 2**64
_MASK = (1 << 64) - 1
_BITS_DTYPE = {1: torch.uint8, 2: torch.int16, 4: torch.int32}
_weights_cache: dict[tuple[str, int], torch.Tensor] = {}


def has_hash_tensor() -> bool:
    """Whether this torch has ``torch.hash_tensor`` (the fast, allocation-free method)."""
    return hasattr(torch, "hash_tensor")


def _local(t: torch.Tensor) -> torch.Tensor:
    # FSDP2/DTensor: fingerprint the shard this rank holds.
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def _signed(value: int) -> int:
    value &= _MASK
    return value - (1 << 64) if value >= (1 << 63) else value


def _weights(device: torch.device, n: int) -> torch.Tensor:
    key = (str(device), n)
    w = _weights_cache.get(key)
    if w is None:
        gen = torch.Generator(device="cpu").manual_seed(0x7E57)
        w = (torch.randint(-(2**62), 2**62, (n,), generator=gen, dtype=torch.int64) * 2 + 1).to(device)
        _weights_cache[key] = w
    return w


def _weights32(device: torch.device, n: int) -> torch.Tensor:
    """The low 32 bits of :func:`_weights` (odd, below 2**32), as int64: 1/2/4-byte elements' weights."""
    key = (f"{device}/32", n)
    w = _weights_cache.get(key)
    if w is None:
        w = _weights(device, n) & 0xFFFFFFFF
        _weights_cache[key] = w
    return w


def _packed_weights(n: int, size: int) -> torch.Tensor:
    """The C kernel's copy of :func:`_weights32`: the same bits packed as int32, for 2-byte elements
    reordered the way the kernel reads them (per 16 elements, element ``4j + 2h + l``'s weight at
    ``8h + 2j + l``: see fp_sum16 in _fused_stats.c)."""
    key = (f"cpu/packed{2 if size == 2 else 1}", n)
    w = _weights_cache.get(key)
    if w is None:
        w = _weights(torch.device("cpu"), n).view(torch.int32)[::2]  # the low halves (little-endian)
        if size == 2:
            w = w.reshape(-1, 4, 2, 2).permute(0, 2, 1, 3)
        w = w.contiguous().reshape(-1)
        _weights_cache[key] = w
    return w


def _flat_view(t: torch.Tensor) -> torch.Tensor:
    """A 1-d view of ``t``'s elements in memory order, without a copy when ``t`` is dense."""
    if t.is_contiguous():
        return t.reshape(-1)
    # Dense but permuted (channels_last): walk the storage in memory order.
    strides = t.stride()
    order = sorted(range(t.dim()), key=lambda d: -strides[d])
    perm = t.permute(order)
    if perm.is_contiguous():
        return perm.reshape(-1)
    return t.contiguous().reshape(-1)


def chunk_for(numel: int) -> int:
    """Chunk length for a tensor of ``numel`` elements: a power of two from 256 to CHUNK.

    Small tensors get small chunks, so the scratch space (an int64 chunk buffer and the cached
    weights) stays a fraction of a percent of the tensor itself; large ones get CHUNK, where the
    per-chunk overhead of a Python loop no longer shows.
    """
    chunk = 256
    while chunk < CHUNK and chunk * 1024 <= numel:
        chunk *= 2
    return chunk


def _bits(t: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """The bit-pattern view of ``t`` the weighted method reads, its element size and its chunk."""
    flat = _flat_view(t)
    if flat.dtype.is_complex:
        flat = torch.view_as_real(flat).reshape(-1)
    # 8-byte elements are read as their two 4-byte halves, each with its own weight: the bit
    # patterns are then zero-extended below 2**32 and times the weights' low 32 bits (odd), every
    # product is exact in 64 bits (the C kernel does four per AVX2 vpmuludq), and the same bit
    # flipped in two elements is always seen (with 64-bit patterns and odd weights, two flipped sign
    # bits would cancel: 2**63 * (w_i + w_j) is 0 modulo 2**64).
    size = min(flat.element_size(), 4)
    bits_dtype = _BITS_DTYPE[size]
    bits = flat.view(bits_dtype) if flat.dtype != bits_dtype else flat
    return bits, size, chunk_for(bits.numel())


def _fused_value(t: torch.Tensor, bits: torch.Tensor, size: int, chunk: int) -> int | None:
    return fused_fingerprint(bits, _packed_weights(chunk, size), chunk) if t.device.type == "cpu" else None


def host_fingerprint(t: torch.Tensor) -> int | None:
    """The fingerprint of a CPU tensor as a Python int, where the fused C kernel computes it (no
    tensor made, nothing to bring to the host); None where it does not apply (use
    :func:`fingerprint_tensor`). The same value ``fingerprint_tensor(t).item()`` gives.

    >>> t = torch.arange(6.0)
    >>> host_fingerprint(t) in (None, int(fingerprint_tensor(t)))
    True
    """
    t = _local(t.detach())
    if t.is_meta or t.numel() == 0 or t.device.type != "cpu":
        return None
    bits, size, chunk = _bits(t)
    fused = _fused_value(t, bits, size, chunk)
    return None if fused is None else _signed(fused)


class SliceReader:
    """Fingerprints of fixed slices of one dense CPU tensor's bit patterns, read straight from its
    memory by the fused kernel: no tensor is made per read, so a read of a few elements costs a
    C call, not a dozen torch ops. Positions count :func:`_bits` elements (8-byte elements: their
    4-byte halves). The reader keeps no reference to the tensor: each :meth:`read` takes the live
    tensor, whose ``data_ptr()`` and strides the caller has checked are the ones recorded here
    (:meth:`same_memory`). Made by :func:`slice_reader`.
    """

    def __init__(self, t: torch.Tensor, lib: Any, size: int, numel: int) -> None:
        self.lib = lib
        self.size = size
        self.numel = numel
        self.nbytes = numel * size
        self.ptr = t.data_ptr()
        self.stride = t.stride()
        self.dtype = t.dtype
        self._weights: dict[int, tuple[int, int]] = {}  # slice length -> (chunk, address of its weights)

    def same_memory(self, t: torch.Tensor) -> bool:
        """Whether ``t`` still holds its values where they were recorded (``p.data = other`` moves
        them), and its storage still holds them all (one resized to nothing, as sharding code
        frees a param's memory, is never read)."""
        if t.data_ptr() != self.ptr or t.stride() != self.stride or t.dtype != self.dtype:
            return False
        storage = t.untyped_storage()
        return storage.nbytes() - (self.ptr - storage.data_ptr()) >= self.nbytes

    def whole(self, t: torch.Tensor, threads: int = 1) -> int:
        """The fingerprint of all of ``t``: :func:`host_fingerprint`'s value, without its checks."""
        return self.read(t, 0, self.numel, threads)

    def read(self, t: torch.Tensor, start: int, stop: int, threads: int = 1) -> int:
        """The fingerprint of bit-pattern elements ``[start, stop)`` of ``t`` (a slice's own value:
        compare it only with the same slice's)."""
        n = stop - start
        w = self._weights.get(n)
        if w is None:
            chunk = chunk_for(n)
            w = self._weights[n] = (chunk, _packed_weights(chunk, self.size).data_ptr())  # cached for good
        return _signed(self.lib.ts_fingerprint(t.data_ptr() + start * self.size, n, self.size, w[1], w[0], threads))


def slice_reader(t: torch.Tensor) -> SliceReader | None:
    """A :class:`SliceReader` of ``t``, where the fused kernel reads it in place (a dense CPU
    tensor with values, not a DTensor); None elsewhere (read it whole with :func:`fingerprint_tensor`).

    >>> t = torch.arange(8.0)
    >>> r = slice_reader(t)
    >>> r is None or r.read(t, 0, 8) == host_fingerprint(t)
    True
    """
    if callable(getattr(t, "to_local", None)) or t.is_meta or t.numel() == 0 or t.device.type != "cpu":
        return None
    t = t.detach()
    lib = library()
    if lib is None or not dense(t) or t.layout != torch.strided:
        return None
    bits, size, _ = _bits(t)
    if bits.data_ptr() != t.data_ptr() or not bits.is_contiguous():
        return None
    return SliceReader(t, lib, size, bits.numel())


def _weighted(t: torch.Tensor) -> torch.Tensor:
    bits, size, chunk = _bits(t)
    fused = _fused_value(t, bits, size, chunk)
    if fused is not None:
        # the C kernel: one pass, no temporaries, the same value as the loop below
        return torch.tensor(_signed(fused), dtype=torch.int64)
    weights = _weights32(t.device, chunk)
    mask = (1 << (8 * size)) - 1 if size > 1 else None  # int16/int32 views widen sign-extended
    total = torch.zeros((), dtype=torch.int64, device=t.device)
    for k, start in enumerate(range(0, bits.numel(), chunk)):
        part = bits[start : start + chunk].to(torch.int64)
        if mask is not None:
            part.bitwise_and_(mask)
        # The chunk index enters through an odd multiplier, so equal chunks at different offsets
        # contribute differently.
        mult = _signed((2 * k + 1) * _GOLDEN)
        total += part.mul_(weights[: part.numel()]).sum() * mult
    return total


def fingerprint_tensor(t: torch.Tensor, method: Method = "auto") -> torch.Tensor:
    """A 0-d int64 tensor on ``t``'s device that changes whenever any single element of ``t`` does."""
    t = _local(t.detach())
    if t.is_meta:
        raise TorchscopeError("cannot fingerprint a tensor on the meta device; load or materialize the weights first")
    if method == "auto":
        # Not "hash": XOR misses the same bit flipped in two elements (see the module docstring).
        method = "weighted"
    if t.numel() == 0:
        return torch.zeros((), dtype=torch.int64, device=t.device)
    if method == "hash":
        if not has_hash_tensor():
            raise TorchscopeError("method='hash' needs torch.hash_tensor (torch >= 2.10); use method='weighted'")
        src = torch.view_as_real(t) if t.dtype.is_complex else t
        return torch.hash_tensor(src).view(torch.int64)
    if method == "weighted":
        return _weighted(t)
    raise TorchscopeError(f"method={method!r} is not one of 'auto', 'hash', 'weighted'")


def fingerprint_many(tensors: Sequence[torch.Tensor], method: Method = "auto") -> list[torch.Tensor]:
    """Device-side fingerprints of ``tensors`` (no host sync); compare them with :func:`to_host`."""
    return [fingerprint_tensor(t, method) for t in tensors]


def to_host(values: Sequence[torch.Tensor]) -> list[int]:
    """Bring device-side 0-d tensors to the host with one transfer per device."""
    out: list[int] = [0] * len(values)
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(values):
        by_device.setdefault(v.device, []).append(i)
    for idx in by_device.values():
        stacked = torch.stack([values[i].to(torch.int64) for i in idx]).tolist()
        for i, v in zip(idx, stacked, strict=True):
            out[i] = int(v)
    return out


@overload
def fingerprint(tensors: torch.Tensor, *, method: Method = "auto") -> Fingerprint: ...
@overload
def fingerprint(tensors: Mapping[str, torch.Tensor], *, method: Method = "auto") -> dict[str, Fingerprint]: ...
@overload
def fingerprint(tensors: Sequence[torch.Tensor], *, method: Method = "auto") -> tuple[Fingerprint, ...]: ...
def fingerprint(tensors: Any, *, method: Method = "auto") -> Any:
    """Fingerprint a tensor, a sequence of tensors, or a ``{name: tensor}`` mapping.

    Each fingerprint is a 64-bit int computed on the tensor's own device with O(1) extra memory; it
    changes whenever any single element changes. All values reach the host in one transfer. Each is
    a :class:`Fingerprint` carrying its algorithm id (``.algorithm``); comparing fingerprints of two
    different algorithms raises :class:`~torchscope.errors.TorchscopeError`.

    Args:
        tensors: A tensor, a sequence of tensors, or a ``{name: tensor}`` mapping.
        method: ``"auto"`` (the weighted sum), ``"weighted"`` or ``"hash"`` (``torch.hash_tensor``).

    Returns:
        A ``Fingerprint`` for a tensor, a list of them for a sequence, a dict for a mapping.

    Raises:
        TorchscopeError: An unknown method, ``"hash"`` without ``torch.hash_tensor``, or a tensor on meta.

    >>> import torch
    >>> w = torch.zeros(1000)
    >>> before = fingerprint(w)
    >>> w[417] = 1e-30
    >>> fingerprint(w) != before
    True
    """
    if method not in ("auto", "hash", "weighted"):
        raise TorchscopeError(f"method={method!r} is not one of 'auto', 'hash', 'weighted'")
    algorithm = ALGORITHMS["weighted" if method == "auto" else method]
    if isinstance(tensors, torch.Tensor):
        return Fingerprint(to_host([fingerprint_tensor(tensors, method)])[0], algorithm)
    if isinstance(tensors, Mapping):
        names = list(tensors)
        values = to_host(fingerprint_many([tensors[n] for n in names], method))
        return {n: Fingerprint(v, algorithm) for n, v in zip(names, values, strict=True)}
    if isinstance(tensors, Sequence):
        return tuple(Fingerprint(v, algorithm) for v in to_host(fingerprint_many(list(tensors), method)))
    raise TorchscopeError(
        f"fingerprint() takes a tensor, a sequence or a mapping of tensors, not {type(tensors).__name__}"
    )


# ---------------------------------------------------------------------------------------------
# Measuring extra memory: every storage a torch op creates, alive or not.


@dataclass
class AllocationTracker:
    """Bytes of storages created by torch ops while tracking: current and peak (on every device)."""

    current: int = 0
    peak: int = 0
    total: int = 0
    _live: dict[int, int] = field(default_factory=dict)

    def _add(self, key: int, nbytes: int) -> None:
        self._live[key] = nbytes
        self.current += nbytes
        self.total += nbytes
        self.peak = max(self.peak, self.current)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)


class _TrackingMode(TorchDispatchMode):
    def __init__(self, tracker: AllocationTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {
            _storage_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.is_meta:
                continue
            key = _storage_key(t)
            # Views and in-place results share an input's storage: not a new allocation.
            if key in inputs or key in self.tracker._live:
                continue
            storage = t.untyped_storage()
            self.tracker._add(key, storage.nbytes())
            weakref.finalize(storage, self.tracker._free, key)
        return out


def _storage_key(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):
        return id(t)


@contextmanager
def track_allocations() -> Iterator[AllocationTracker]:
    """Count the bytes of every storage torch ops create inside the block (current and peak).

    It sees what goes through the dispatcher (outputs of ops), not scratch space inside a kernel, so
    pair it with a process-level measure (peak RSS) when a kernel may allocate internally.

    >>> import torch
    >>> with track_allocations() as mem:
    ...     x = torch.ones(256)
    >>> mem.peak
    1024
    """
    tracker = AllocationTracker()
    with _TrackingMode(tracker):
        yield tracker
