"""One mode of the benchmark (``frozen`` or ``full``): build, search the batch, warm up, time, check.

Timed windows of torchscope's step alternate (ABBA) with windows of the plain baseline loop on the
same model, optimizer and batches, synchronising the device only at window edges.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from torchscope._bench.batchsize import search_batch
from torchscope._bench.data import image_folder
from torchscope._bench.device import Clock, free_memory, peak_memory, reset_peak_memory
from torchscope._bench.efficiency import efficiency
from torchscope._bench.environment import compute_dtype
from torchscope._bench.lm import TokenBatches, freeze_lm, lm_head_name
from torchscope._bench.loops import (
    LossFn,
    TrainStep,
    baseline_window,
    count_flops,
    harness_window,
    make_optimizer,
    token_baseline_window,
    warm_up,
)
from torchscope._bench.plan import Plan
from torchscope._bench.schema import CheckSummary, DistributedStats, ModeResult, Timing, Warmup
from torchscope._bench.stats import median, paired_ratio, scaling_efficiency, summarize_windows
from torchscope._check import check_step
from torchscope._freeze import freeze_backbone, replace_head
from torchscope._guard.core import FreezeGuard
from torchscope._loader import load_model
from torchscope.errors import TorchscopeError


def _frozen_norms(model: nn.Module) -> list[nn.Module]:
    """Norm layers with running stats whose own params are all frozen (or that have none)."""
    out: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            if not any(p.requires_grad for p in m.parameters(recurse=False)):
                out.append(m)
    return out


def _train_mode(model: nn.Module, frozen_norms: Sequence[nn.Module]) -> None:
    model.train()
    # the second half of "frozen": frozen norm layers must not update their running stats
    for m in frozen_norms:
        m.eval()


def _build(plan: Plan, mode: str) -> tuple[nn.Module, str, list[nn.Module]]:
    torch.manual_seed(plan.seed)
    if isinstance(plan.spec, nn.Module):
        # the user's own model is never trained: each mode gets a fresh copy
        model = copy.deepcopy(plan.spec).to(plan.device)
    else:
        model = load_model(plan.spec, device=plan.device, **plan.hf)
    if plan.tokens:
        # no head swap: the loader built the LM head, or the classifier with --num-labels
        head = freeze_lm(model) if mode == "frozen" else lm_head_name(model)
    else:
        head = replace_head(model, plan.num_classes)
        if mode == "frozen":
            head = freeze_backbone(model)
    if mode != "frozen":
        for p in model.parameters():
            p.requires_grad_(True)
    norms = _frozen_norms(model)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    _train_mode(model, norms)
    return model, head, norms


def _timing(window_s: list[float], plan: Plan, batch_size: int) -> Timing:
    per_step = plan.per_step(batch_size)
    stats = summarize_windows(window_s, steps=plan.steps, images_per_step=per_step)
    return Timing(tuple(window_s), plan.steps, per_step, stats, "tokens" if plan.tokens else "images")


def run_mode(plan: Plan, mode: str) -> ModeResult:
    """Measure ``mode``: every raw window time, FLOPs, memory, and (``plan.check``) the freeze invariants."""
    dist = plan.dist
    device = plan.device
    model, head, norms = _build(plan, mode)
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    trainable = sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
    params = [p for p in model.parameters() if p.requires_grad]

    search: tuple[tuple[int, bool], ...] = ()
    if plan.batch_size is None:
        batch_size, search = search_batch(plan, mode, model)
        _train_mode(model, norms)
    else:
        batch_size = plan.batch_size

    sampler: Any = None
    loader: Any = None
    if plan.data is not None:
        loader, sampler, _ = image_folder(
            plan.data, plan.image_size, batch_size, plan.workers, device.type == "cuda", dist
        )
    batches = plan.batches(model, batch_size, loader, sampler)
    criterion = nn.CrossEntropyLoss()  # the baseline's, for images
    loss = plan.loss()
    optimizer = make_optimizer(plan.optimizer, params, plan.lr)
    scaler = plan.scaler()
    clock = Clock(device)

    single: list[float] = []
    if dist is not None:
        single = _single_process_reference(plan, mode, model, loss, optimizer, batches, clock)

    eager: Callable[..., Any] = model
    if dist is not None:
        eager = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward: Callable[..., Any] = eager
    if plan.compile_mode is not None:
        forward = torch.compile(eager, mode=plan.compile_mode)

    # FLOPs of one real step, counted eagerly by the dispatcher (compiled graphs hide their ops);
    # in frozen mode no backward runs through the backbone, so none is counted
    flops = count_flops(TrainStep(eager, loss, optimizer, scaler, device, plan.amp_dtype), batches)
    _train_mode(model, norms)

    # the guard's view of the run: the frozen tensors before warm-up against after timing (no hook in
    # the timed loop: it only reads the model at its two ends)
    watch = _watch(model) if plan.check and mode == "frozen" else None
    memory_source = reset_peak_memory(device)
    step = TrainStep(forward, loss, optimizer, scaler, device, plan.amp_dtype)
    warm = warm_up(step, batches, clock, plan.warmup, lambda d, t: plan.report(f"{mode}: warm-up", d, t))

    harness_s: list[float] = []
    baseline_s: list[float] = []
    total_windows = plan.windows * (2 if plan.baseline else 1)
    done = 0
    for w in range(plan.windows):
        # ABBA order: harness and baseline alternate who goes first, so drift hits both alike
        order = ("harness", "baseline") if w % 2 == 0 else ("baseline", "harness")
        for which in order if plan.baseline else ("harness",):
            if dist is not None:
                tdist.barrier()
            clock.start()
            if which == "harness":
                harness_window(step, batches, plan.steps)
            elif isinstance(batches, TokenBatches):
                token_baseline_window(
                    forward, optimizer, scaler, batches.next()[0], device, plan.amp_dtype, plan.steps
                )
            else:
                baseline_window(
                    forward,
                    criterion,
                    optimizer,
                    scaler,
                    batches,
                    device,
                    plan.amp_dtype,
                    plan.channels_last,
                    plan.steps,
                )
            elapsed = clock.stop()
            (harness_s if which == "harness" else baseline_s).append(elapsed)
            done += 1
            plan.report(f"{mode}: timing", done, total_windows)
    memory = peak_memory(device, memory_source)

    eff = efficiency(
        flops,
        median(harness_s) / plan.steps,
        compute_dtype(plan.amp, device),
        torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        plan.peak.tflops if plan.peak is not None else None,
    )
    distributed = (
        _gather_distributed(plan, harness_s, single, plan.per_step(batch_size)) if dist is not None else None
    )
    guard = None
    if watch is not None:
        guard = watch.check().to_dict()
        watch.close(check=False)
        del watch
    check = _check(model, step, batches, optimizer, guard) if plan.check else None

    first, rest = warm[0], warm[1:]
    compile_s = max(0.0, first - median(rest)) if plan.compile_mode is not None and rest else None
    result = ModeResult(
        mode=mode,
        batch_size=batch_size,
        batch_search=search,
        head=head,
        total_params=total,
        trainable_params=trainable,
        warmup=Warmup(tuple(warm), first, compile_s),
        harness=_timing(harness_s, plan, batch_size),
        baseline=_timing(baseline_s, plan, batch_size) if plan.baseline else None,
        ratio=paired_ratio(harness_s, baseline_s) if plan.baseline else None,
        efficiency=eff,
        memory=memory,
        check=check,
        distributed=distributed,
    )
    del model, eager, forward, step, optimizer, batches
    free_memory()
    return result


def _single_process_reference(
    plan: Plan,
    mode: str,
    model: nn.Module,
    loss: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Any,
    clock: Clock,
) -> list[float]:
    """Rank 0 alone runs the same per-rank batch without DDP, while the other ranks wait."""
    dist = plan.dist
    windows: list[float] = []
    if dist is not None and dist.rank == 0:
        forward: Callable[..., Any] = model
        if plan.compile_mode is not None:
            forward = torch.compile(model, mode=plan.compile_mode)
        step = TrainStep(forward, loss, optimizer, plan.scaler(), plan.device, plan.amp_dtype)
        warm_up(
            step,
            batches,
            clock,
            plan.warmup,
            lambda d, t: plan.report(f"{mode}: single-process warm-up", d, t),
        )
        for w in range(plan.windows):
            clock.start()
            harness_window(step, batches, plan.steps)
            windows.append(clock.stop())
            plan.report(f"{mode}: single-process timing", w + 1, plan.windows)
    tdist.barrier()
    return windows


def _gather_distributed(
    plan: Plan, harness_s: list[float], single: list[float], batch_size: int
) -> DistributedStats:
    """Global, per-rank and single-process throughput; ``batch_size`` is what a step processes
    per rank in the throughput's unit (images, or tokens)."""
    dist = plan.dist
    if dist is None:  # pragma: no cover - only called under torchrun
        raise RuntimeError("_gather_distributed needs a process group")
    on = plan.device if dist.backend == "nccl" else torch.device("cpu")
    windows = torch.tensor(harness_s, dtype=torch.float64, device=on)
    slowest = windows.clone()
    tdist.all_reduce(slowest, op=tdist.ReduceOp.MAX)
    own = torch.tensor([plan.steps * batch_size / median(harness_s)], dtype=torch.float64, device=on)
    per_rank = [torch.zeros_like(own) for _ in range(dist.world_size)]
    tdist.all_gather(per_rank, own)
    ref = torch.tensor(single if dist.rank == 0 else [0.0] * plan.windows, dtype=torch.float64, device=on)
    tdist.broadcast(ref, src=0)
    global_s = [float(x) for x in slowest.tolist()]
    single_s = [float(x) for x in ref.tolist()]
    global_img_s = median([dist.world_size * batch_size * plan.steps / t for t in global_s])
    single_img_s = median([batch_size * plan.steps / t for t in single_s])
    return DistributedStats(
        world_size=dist.world_size,
        backend=dist.backend,
        global_window_s=tuple(global_s),
        global_img_s=global_img_s,
        per_rank_img_s=tuple(float(t.item()) for t in per_rank),
        single_window_s=tuple(single_s),
        single_img_s=single_img_s,
        scaling_efficiency=scaling_efficiency(global_img_s, dist.world_size, single_img_s),
    )


def _watch(model: nn.Module) -> FreezeGuard | None:
    """A guard over the frozen tensors of the timed run; None where nothing is frozen."""
    try:
        return FreezeGuard(model, fail_fast=False)
    except TorchscopeError:
        return None


def _check(
    model: nn.Module, step: TrainStep, batches: Any, optimizer: torch.optim.Optimizer, guard: dict[str, Any] | None
) -> CheckSummary:
    batch = batches.next()
    report = check_step(model, lambda: step(*batch), optimizer=optimizer)
    lines = tuple(f"{v.kind} {v.name}: {v.cause}" for v in report.violations)
    return CheckSummary(ok=bool(report.ok), violations=lines, report=report.to_dict(), guard=guard)
