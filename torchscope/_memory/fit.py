"""``--fit``: the largest batch size whose predicted peak fits a card, in a handful of traces.

A trace costs the same at any batch size (fake tensors carry shapes, not data), but it still costs
seconds, so the search does not bisect with traces. It traces two batch sizes, ``b1`` and ``b2``:
when both runs made the same allocations in the same order (the step's control flow does not
depend on the batch size), every storage's bytes are affine in the batch size, so the trace at any
batch ``b`` is known exactly without running it: each storage's bytes interpolated, rounded to the
allocator's block, and the timeline swept again. The search runs on that model; then the answer
``b`` and ``b + 1`` are traced for real to confirm it (and the search walks on with real traces in
the rare case the model was off).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from torchscope._memory.fake_step import OptimizerArg, Trace, UserStep, trace_step
from torchscope._memory.schema import FitResult, Margin
from torchscope._memory.step import Batch, StepConfig
from torchscope._memory.storage import allocator_rounding, rounded
from torchscope._parsing import INT64_MAX
from torchscope._progress import ProgressFn, tell
from torchscope.errors import ForwardError

MAX_BATCH = 1 << 20


class _Model:
    """Peak bytes at any batch size, from two aligned traces (None when they do not align)."""

    def __init__(self, t1: Trace, b1: int, t2: Trace, b2: int, block: int) -> None:
        self.t1, self.b1, self.b2, self.block = t1, b1, b2, block
        a1, a2 = t1.allocations, t2.allocations
        same = (
            len(a1) == len(a2) and t1.clocks == t2.clocks and t1.window == t2.window
            and all(x.born == y.born and x.died == y.died and x.kind == y.kind for x, y in zip(a1, a2, strict=True))
        )  # fmt: skip
        self.slopes = [(y.raw - x.raw, x.raw) for x, y in zip(a1, a2, strict=True)] if same else None

    def peak(self, b: int) -> int | None:
        if self.slopes is None:
            return None
        span = self.b2 - self.b1
        sizes = [rounded(raw + (d * (b - self.b1)) // span, self.block) for d, raw in self.slopes]
        return self.t1.evaluate(sizes)[0]


SEARCH_PHASE = "batch size search"
EXPECTED_TRACES = 4


def fit_batch_size(
    model: nn.Module,
    batch: Batch,
    config: StepConfig,
    capacity: int,
    target: str,
    margin: Margin,
    weights: int,
    *,
    with_batch: Callable[[Batch, int], Batch],
    step: UserStep | None = None,
    optimizer: OptimizerArg = "adamw",
    known: tuple[int, Trace] | None = None,
    progress: ProgressFn | None = None,
) -> FitResult:
    """Search the largest batch size whose predicted peak is at most ``margin.usable(capacity)``.

    ``known`` is a trace already made (batch size, trace), used as one of the two points.
    ``progress("batch size search", traces, expected)`` is called after each trace: the search
    usually needs four (two to fit the line, two to confirm its answer); more raise the total.
    """
    usable = margin.usable(capacity)
    # no batch whose inputs torch could not size (2^63 - 1 bytes; 16 bytes a value at most)
    sample = max((math.prod(shape[1:]) for shape, _ in batch if shape), default=1)
    limit = max(1, min(MAX_BATCH, INT64_MAX // (16 * max(sample, 1))))
    traces = 0
    cache: dict[int, int] = {}
    too_big: set[int] = set()  # batch sizes whose tensors torch cannot even size: no card holds them

    def told() -> None:
        tell(progress, SEARCH_PHASE, traces, max(EXPECTED_TRACES, traces + 1))

    def traced(b: int) -> int:
        nonlocal traces
        if b not in cache:
            told()
            traces += 1
            try:
                cache[b] = trace_step(
                    model, with_batch(batch, b), config, step=step, optimizer=optimizer
                ).evaluate()[0]
            except ForwardError as exc:
                if b <= 3 or "size calculation overflowed" not in str(exc):
                    raise
                too_big.add(b)
                cache[b] = usable + 1
        return cache[b]

    def result(b: int, reason: str = "") -> FitResult:
        peak = traced(b) if b else 0  # the answer's peak is always a real trace, never a default
        return FitResult(
            target=target, capacity=capacity, margin=margin, usable=usable, batch_size=b,
            peak=peak, next_peak=None if b + 1 in too_big else cache.get(b + 1), weights=weights,
            traces=traces, reason=reason, search_limit=limit,
        )  # fmt: skip

    if weights > usable:
        return result(0, "the weights alone do not fit")
    if known is None:
        told()
        known = (2, trace_step(model, with_batch(batch, 2), config, step=step, optimizer=optimizer))
        traces += 1
    b1, t1 = known
    b2 = b1 + 1
    told()
    t2 = trace_step(model, with_batch(batch, b2), config, step=step, optimizer=optimizer)
    traces += 1
    cache[b1], cache[b2] = t1.evaluate()[0], t2.evaluate()[0]
    linear = _Model(t1, b1, t2, b2, allocator_rounding(config.device))

    def predicted(b: int) -> int:
        got = linear.peak(b) if b not in cache else cache[b]
        return got if got is not None else traced(b)

    if predicted(1) > usable:
        return result(0, "batch size 1 does not fit")
    lo, hi = 1, 2  # predicted(lo) fits; grow hi until it does not
    while hi <= limit and predicted(hi) <= usable:
        lo, hi = hi, hi * 2
    if hi > limit:  # doubling passed the limit: try the limit itself
        lo, hi = (limit, hi) if predicted(limit) <= usable else (lo, limit)
    if lo == limit:
        if traced(lo) <= usable:
            return result(lo, "every batch size up to the search limit fits")
        hi, lo = lo, lo // 2  # the interpolation was off at the limit: search below it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if predicted(mid) <= usable else (lo, mid)
    # Confirm with real traces; walk on if the interpolation was off.
    while lo > 1 and traced(lo) > usable:
        lo -= 1
    while lo < limit and traced(lo + 1) <= usable:
        lo += 1
    answer = result(lo)
    tell(progress, SEARCH_PHASE, traces, traces)
    return answer
