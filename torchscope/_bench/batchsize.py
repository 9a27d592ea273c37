"""``--batch-size auto``: the largest batch that fits, found by doubling then bisecting on real steps."""

from __future__ import annotations

import gc
import math
from collections.abc import Callable

import torch
from torch import nn

from torchscope._bench.device import Clock
from torchscope._bench.loops import TrainStep, make_optimizer
from torchscope._bench.plan import Plan
from torchscope._bench.stats import next_bisect
from torchscope.errors import TorchscopeError


def is_oom_error(exc: BaseException) -> bool:
    """True for an out-of-memory error from any device (CUDA's OutOfMemoryError, a failed CPU alloc)."""
    # torch.OutOfMemoryError is torch >= 2.5's name for torch.cuda.OutOfMemoryError
    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and (
        "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower()
    )


def find_batch_size(
    trial: Callable[[int], None],
    *,
    start: int = 1,
    limit: int = 1024,
    is_oom: Callable[[BaseException], bool] = is_oom_error,
) -> tuple[int, tuple[tuple[int, bool], ...]]:
    """The largest batch size that fits: double from ``start`` until out of memory, then bisect.

    ``trial(b)`` runs a few real steps at batch size ``b`` and raises on OOM; memory is freed
    between trials. Returns the best size and every ``(size, fits)`` trial in order.

    >>> def trial(b):
    ...     if b > 40:
    ...         raise torch.OutOfMemoryError("fake")
    >>> find_batch_size(trial, start=8)
    (40, ((8, True), (16, True), (32, True), (64, False), (48, False), (40, True), (44, False), (42, False), (41, False)))
    """
    if start < 1 or limit < start:
        raise TorchscopeError(f"batch-size search needs 1 <= start ({start}) <= limit ({limit})")
    trials: list[tuple[int, bool]] = []

    def attempt(b: int) -> bool:
        fits = True
        try:
            trial(b)
        except BaseException as exc:
            if not is_oom(exc):
                raise
            fits = False
        if not fits:
            # collected outside the except block, once the traceback (and the tensors its frames
            # hold) is gone
            gc.collect()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        trials.append((b, fits))
        return fits

    lo: int | None = None
    hi: int | None = None
    b = start
    while lo is None:
        if attempt(b):
            lo = b
        elif b == 1:
            raise TorchscopeError(
                "batch size 1 does not fit in memory; try a smaller --image-size, --amp bf16, or --finetune frozen"
            )
        else:
            hi, b = b, b // 2
    while hi is None and lo < limit:
        nxt = min(lo * 2, limit)
        if attempt(nxt):
            lo = nxt
        else:
            hi = nxt
            break
    if hi is not None:
        mid = next_bisect(lo, hi)
        while mid is not None:
            if attempt(mid):
                lo = mid
            else:
                hi = mid
            mid = next_bisect(lo, hi)
    return lo, tuple(trials)


def most_trials(start: int, limit: int) -> int:
    """The most trials :func:`find_batch_size` makes from ``start`` up to ``limit``: the progress bar's total.

    >>> most_trials(1, 64), most_trials(8, 1024)
    (13, 18)
    """
    return 1 + max(0, math.ceil(math.log2(limit / start))) + math.ceil(math.log2(max(limit, 2)))


def search_batch(plan: Plan, mode: str, model: nn.Module) -> tuple[int, tuple[tuple[int, bool], ...]]:
    """The batch size of ``mode`` on ``model`` (its trainable params as the run will train them).

    Under torchrun every rank searches, then all take the smallest size that fits everywhere.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    trials_done: list[int] = []

    def trial(b: int) -> None:
        if plan.oom_probe is not None:
            plan.oom_probe(b)
        optimizer = make_optimizer(plan.optimizer, params, plan.lr)
        step = TrainStep(model, plan.loss(), optimizer, plan.scaler(), plan.device, plan.amp_dtype)
        batches = plan.batches(model, b)
        # two steps: optimizer state (momentum, Adam moments) is allocated at the first one
        for _ in range(2):
            step(*batches.next())
        Clock(plan.device).sync()
        plan.report(f"{mode}: batch size search", len(trials_done) + 1, bound)
        trials_done.append(b)

    start = min(1 if plan.device.type == "cpu" else 8, plan.max_batch_size)
    bound = most_trials(start, plan.max_batch_size)
    best, trials = find_batch_size(trial, start=start, limit=plan.max_batch_size)
    for p in params:
        p.grad = None
    if plan.dist is not None:
        t = torch.tensor([best], device=plan.device if plan.dist.backend == "nccl" else "cpu")
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        best = int(t.item())
    return best, trials
