"""How a guard reads frozen values at a check without reading every byte at every step.

Reading every frozen byte at every optimizer step costs a full pass over the frozen weights per
step: 5 to 10 % of a frozen-backbone fine-tune's step. Most frozen bytes can only move by a few
routes, and most routes leave a mark that is free to read, so the guard sorts the frozen tensors:

- **read in full at every check**: buffers (BatchNorm's train-mode update bumps no version
  counter), params that an optimizer holds (a fused optimizer's step bumps none either), tensors
  the fused CPU kernel cannot read in place (other devices, DTensor shards), tensors without a
  version counter (made under ``torch.inference_mode``), and any tensor once it has changed.
- **cold** (:class:`ColdSweep`): every other frozen param, the usual case of a frozen backbone
  outside the optimizer. At every check each one's version counter and ``data_ptr()`` are
  compared with the ones recorded (``copy_``, ``mul_`` under ``no_grad``, ``load_state_dict``
  bump the counter; ``p.data = t`` moves the memory) and a sample of a few slices spread over
  it is fingerprinted (a write of the whole tensor through ``.data`` changes them). A tensor
  whose counter, memory or sample moved is read in full at that same check, so a bump without a
  change (``add_(0)``) is no violation. Besides, a rotating sweep fingerprints a slice of
  every cold byte per check, against the slice's own fingerprint from the start, so that every
  byte is read at least once in any ``sweep_checks`` checks: a write that leaves no mark (one
  element through ``.data`` or numpy) is found within ``sweep_checks`` checks, with the steps
  it happened between.

The last check of a guard (and one the user asks for with ``guard.check()``) reads everything.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from torchscope._fingerprint import SliceReader, slice_reader
from torchscope._format import format_bytes

__all__ = ["SEGMENT_BYTES", "SWEEP_BYTES", "ColdSweep", "Finding", "sweep_length"]

#: The sweep reads a tensor in slices of at most this many bytes (a fingerprint kept per slice).
SEGMENT_BYTES = 1 << 20
#: Without ``sweep_checks``, the sweep reads about this many bytes per check...
SWEEP_BYTES = 4 << 20
#: ...but never takes more than this many checks to read every byte.
MAX_SWEEP_CHECKS = 64
#: The sample: this many slices of this many elements, spread evenly over a tensor.
SAMPLE_SLICES = 2
SAMPLE_LEN = 32


def sweep_length(cold_bytes: int, sweep_checks: int | None) -> int:
    """The checks a sweep takes to read every one of ``cold_bytes`` (``sweep_checks`` if given).

    >>> sweep_length(44_700_000, None), sweep_length(1_000, None), sweep_length(10**10, None), sweep_length(10, 3)
    (11, 1, 64, 3)
    """
    if sweep_checks is not None:
        return sweep_checks
    return max(1, min(MAX_SWEEP_CHECKS, math.ceil(cold_bytes / SWEEP_BYTES)))


@dataclass(frozen=True)
class Finding:
    """Why a cold tensor was read in full at a check: ``found_by`` (``version``, ``storage``,
    ``sample``, ``sweep``, ``final``) and ``since``, the last step at which all the bytes that
    told were read unchanged."""

    found_by: str
    since: int


@dataclass
class _Cold:
    slot: int
    name: str
    ref: Callable[[], torch.Tensor | None]
    reader: SliceReader
    version: int
    windows: list[tuple[int, int]]
    sample: list[int]
    segments: list[int] = field(default_factory=list)
    hot: bool = False  # changed once: read in full from now on


@dataclass
class _Segment:
    cold: int
    start: int
    stop: int
    fp: int
    clean: int = 0  # the last step at which it was read unchanged (0: the start)


def _version(t: torch.Tensor) -> int | None:
    """``t._version``; None for a tensor that keeps none (made under ``torch.inference_mode``)."""
    if t.is_inference():  # an in-place write under inference_mode bumps nothing (a Parameter says 0)
        return None
    try:
        return int(t._version)
    except RuntimeError:
        return None


def _windows(numel: int) -> list[tuple[int, int]]:
    if numel <= SAMPLE_SLICES * SAMPLE_LEN * 2:
        return [(0, numel)]
    gap = numel // SAMPLE_SLICES
    return [(i * gap + (gap - SAMPLE_LEN) // 2, i * gap + (gap - SAMPLE_LEN) // 2 + SAMPLE_LEN) for i in range(SAMPLE_SLICES)]


class ColdSweep:
    """The cold frozen tensors of a guard, their marks, samples and sweep; see the module docstring.

    :meth:`plan` says, before a check measures, which slots need not be read (their marks,
    samples and slices are as recorded) and why each of the others must be; :meth:`settle`, after
    the check, takes in what the full reads found.
    """

    def __init__(self, tensors: list[tuple[int, str, torch.Tensor]], sweep_checks: int | None) -> None:
        self.cold: list[_Cold] = []
        self.segments: list[_Segment] = []
        self.rest: list[int] = []  # slots handed in that the kernel cannot read in place: read in full
        with torch.no_grad():
            for slot, name, t in tensors:
                reader = slice_reader(t)
                version = _version(t)
                if reader is None or version is None:
                    self.rest.append(slot)
                    continue
                windows = _windows(reader.numel)
                c = _Cold(slot, name, weakref.ref(t), reader, version, windows,
                          [reader.read(t, a, b) for a, b in windows])  # fmt: skip
                step = max(1, SEGMENT_BYTES // reader.size)
                for a in range(0, reader.numel, step):
                    b = min(reader.numel, a + step)
                    c.segments.append(len(self.segments))
                    self.segments.append(_Segment(len(self.cold), a, b, reader.read(t, a, b, torch.get_num_threads())))
                self.cold.append(c)
        self.nbytes_cold = sum(c.reader.nbytes for c in self.cold)
        self.checks = sweep_length(self.nbytes_cold, sweep_checks)
        self.budget = math.ceil(self.nbytes_cold / self.checks)
        self._cursor = 0
        self._by_slot = {c.slot: c for c in self.cold}

    def name_of(self, slot: int) -> str:
        return self._by_slot[slot].name

    @property
    def nbytes(self) -> int:
        """Bytes kept: 8 per slice and per sample slice."""
        return 8 * (len(self.segments) + sum(len(c.windows) for c in self.cold))

    def plan(self, step: int, prev: int, *, full: bool) -> tuple[set[int], dict[int, Finding]]:
        """(the slots not to read at this check, why each cold one that must be read is); ``prev``
        is the step of the check before (0: the start)."""
        found: dict[int, Finding] = {}
        with torch.no_grad():
            for c in self.cold:
                t = c.ref()
                if t is None or c.hot:
                    continue
                if t._version != c.version:
                    found[c.slot] = Finding("version", prev)
                elif not c.reader.same_memory(t):
                    found[c.slot] = Finding("storage", prev)
                elif any(c.reader.read(t, a, b) != fp for (a, b), fp in zip(c.windows, c.sample, strict=True)):
                    found[c.slot] = Finding("sample", prev)
                elif full:
                    found[c.slot] = Finding("final", min(self.segments[i].clean for i in c.segments))
            if not full:
                self._sweep(step, found)
        skip = {c.slot for c in self.cold if not c.hot and c.slot not in found and c.ref() is not None}
        return skip, found

    def _sweep(self, step: int, found: dict[int, Finding]) -> None:
        """Read the next slices, ``budget`` bytes at least: in ``checks`` checks, every byte."""
        threads = torch.get_num_threads()
        done = 0
        for _ in range(len(self.segments)):
            if done >= self.budget:
                break
            seg = self.segments[self._cursor]
            self._cursor = (self._cursor + 1) % len(self.segments)
            c = self.cold[seg.cold]
            done += (seg.stop - seg.start) * c.reader.size
            t = c.ref()
            if t is None or c.hot or c.slot in found:
                continue  # read in full at this check anyway, or gone
            if c.reader.read(t, seg.start, seg.stop, threads) == seg.fp:
                seg.clean = step
            else:
                found[c.slot] = Finding("sweep", seg.clean)

    def settle(self, step: int, changed: dict[int, bool]) -> None:
        """What the full reads of this check's ``found`` slots said: a changed tensor is read in
        full from now on; an unchanged one starts over from its marks as they are now."""
        for slot, moved in changed.items():
            c = self._by_slot.get(slot)
            t = None if c is None else c.ref()
            if c is None or t is None:
                continue
            if moved:
                c.hot = True
                continue
            reader = slice_reader(t)
            version = _version(t)
            if reader is None or version is None or reader.numel != c.reader.numel or reader.size != c.reader.size:
                c.hot = True  # it can no longer be read in place: read in full
                continue
            c.reader, c.version = reader, version
            for i in c.segments:
                self.segments[i].clean = step

    def describe(self, total: int) -> str | None:
        """The caveat of a check that read the cold tensors by marks, samples and sweep (None where
        there is none: every byte was read)."""
        cold = [c for c in self.cold if not c.hot]
        if not cold or self.checks < 2:
            return None
        nbytes = sum(c.reader.nbytes for c in cold)
        return (
            f"{len(cold)} frozen tensor(s) outside the optimizer ({format_bytes(nbytes)}) were read by version "
            f"counter, memory address and a {SAMPLE_SLICES}-slice sample at every check, and in full once every "
            f"{self.checks} checks (a rotating sweep, {format_bytes(self.budget)} per check): a write that bypasses "
            f"the version counter into a few elements (p.data[i] = x, numpy) is found within {self.checks} checks, "
            f"with the steps it happened between; {total - len(cold)} other frozen tensor(s) were read in full; the last check "
            "reads everything (content='every-step' reads every byte at every check)"
        )
