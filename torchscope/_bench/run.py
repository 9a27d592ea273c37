"""The entry points: :func:`run_bench` takes a :class:`BenchConfig`; :func:`bench` is the keyword call.

A torchvision classifier gets a new head (a language model keeps its own: see
:mod:`~torchscope._bench.lm`), then trains with its backbone frozen (``frozen``) or
everything trainable (``full``), each mode timed against a plain hand-written loop (the baseline),
so the harness proves that it adds nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

from torchscope._bench.data import image_folder
from torchscope._bench.device import Dist, dist_from_env, measure_matmul_peak, resolve_device
from torchscope._bench.environment import capture_environment, compute_dtype
from torchscope._bench.lm import DEFAULT_SEQ_LEN
from torchscope._bench.loops import DEFAULT_LR
from torchscope._bench.mode import run_mode
from torchscope._bench.plan import Plan
from torchscope._bench.schema import BenchConfig, BenchResult, OomProbe, ProgressFn, modes_of
from torchscope._loader import default_input_size
from torchscope._loader.hf import PREFIX as HF_PREFIX
from torchscope._tokens import is_token_model
from torchscope.errors import TorchscopeError


def run_bench(
    config: BenchConfig,
    *,
    module: nn.Module | None = None,
    progress: ProgressFn | None = None,
    oom_probe: OomProbe | None = None,
) -> BenchResult:
    """Benchmark the reference fine-tune that ``config`` describes.

    ``config.model`` is the spec the loader resolves; pass ``module`` to benchmark a module you
    built instead (it is copied per mode and never trained; ``config.model`` then only names it).
    ``progress(phase, done, total)`` is called at window edges only; ``oom_probe(b)`` before each
    trial of ``batch_size="auto"`` (raise ``torch.OutOfMemoryError`` in it to impose a limit).
    Under ``torchrun`` it runs DDP and adds global, per-rank and scaling figures. The result's
    config is ``config`` with every ``None`` replaced by what was chosen.

    >>> cfg = BenchConfig("resnet18", modes=("frozen",), device="cpu", batch_size=2, image_size=32,
    ...                   steps=1, windows=1, warmup=1, check=False, measure_peak=False)
    >>> run_bench(cfg).mode("frozen").harness.stats.img_s_median > 0
    True
    """
    config.validate()
    tokens = config.seq_len is not None or (
        is_token_model(module) if module is not None else config.model.startswith(HF_PREFIX)
    )
    if tokens and config.seq_len is None:
        # a language model without --tokens: sequences of the default length, image options refused
        config = dataclasses.replace(config, seq_len=DEFAULT_SEQ_LEN)
        config.validate()
    ranks = dist_from_env()
    dev = resolve_device(config.device, ranks[2] if ranks else None)
    if config.amp == "fp16" and dev.type == "cpu":
        raise TorchscopeError(
            "--amp fp16 needs a GPU (GradScaler on CPU float16 is not a reference setup); use --amp bf16"
        )
    auto = config.batch_size == "auto"
    size = 0 if tokens else config.image_size or (224 if module is not None else int(default_input_size(config.model)[-1]))
    data_path = Path(config.data) if config.data is not None else None
    workers = (
        config.workers if config.workers is not None else (min(4, os.cpu_count() or 1) if data_path else 0)
    )

    classes = 0 if tokens else config.num_classes or 10
    if data_path is not None:
        _, _, found = image_folder(data_path, size, 1, 0, False, None)
        if config.num_classes is not None and config.num_classes < found:
            raise TorchscopeError(
                f"--num-classes {config.num_classes} is fewer than the {found} classes in --data; drop it"
            )
        classes = config.num_classes or found

    dist: Dist | None = None
    if ranks is not None:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        owned = not tdist.is_initialized()
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if owned:
            # binding NCCL to this rank's GPU up front keeps barriers off other ranks' devices
            tdist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
        dist = Dist(ranks[0], ranks[1], ranks[2], tdist.get_backend(), owned)

    with contextlib.ExitStack() as restore:
        if dist is not None and dist.owned:
            restore.callback(tdist.destroy_process_group)
        restore.callback(setattr, torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
        # models are built under a fixed seed; the caller's RNG streams come back untouched
        restore.enter_context(torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []))
        if dev.type == "cuda":
            # CUDA events and streams belong to the current device: make it ours (cuda:1 too)
            restore.enter_context(torch.cuda.device(dev))
            # the reference scripts run with cuDNN autotuning on
            torch.backends.cudnn.benchmark = True
        peak = None
        if config.measure_peak:
            if progress is not None:
                progress("matmul peak", 0, 1)
            peak = measure_matmul_peak(dev, compute_dtype(config.amp, dev))
            if progress is not None:
                progress("matmul peak", 1, 1)
        plan = Plan(
            spec=module if module is not None else config.model,
            device=dev,
            batch_size=None if auto else int(config.batch_size),
            max_batch_size=config.max_batch_size or (1024 if dev.type == "cuda" else 64),
            image_size=size,
            num_classes=classes,
            steps=config.steps,
            windows=config.windows,
            warmup=config.warmup,
            optimizer=config.optimizer,
            lr=config.lr or DEFAULT_LR[config.optimizer],
            amp=config.amp,
            channels_last=config.channels_last,
            compile_mode=config.compile_mode if config.compile else None,
            data=data_path,
            workers=workers,
            baseline=config.baseline,
            check=config.check,
            seed=config.seed,
            progress=progress,
            oom_probe=oom_probe,
            dist=dist,
            peak=peak,
            seq_len=config.seq_len,
            token_dtype=getattr(torch, config.token_dtype),
            hf=_hf_options(config),
        )
        results = tuple(run_mode(plan, m) for m in config.modes)
        env = capture_environment(dev, config.amp, config.channels_last, plan.compile_mode, dist)
    resolved = dataclasses.replace(
        config,
        device=str(dev),
        max_batch_size=plan.max_batch_size if auto else config.max_batch_size,
        image_size=None if tokens else size,
        num_classes=None if tokens else classes,
        lr=plan.lr,
        data=None if data_path is None else str(data_path),
        workers=workers,
    )
    return BenchResult(config=resolved, environment=env, matmul_peak=peak, modes=results)


def _hf_options(config: BenchConfig) -> dict[str, Any]:
    """The hf: loader's keywords that were given (none for other specs: the loader refuses them)."""
    options: dict[str, Any] = {}
    if config.hf_config:
        options["config"] = dict(config.hf_config)
    if config.task is not None:
        options["task"] = config.task
    if config.num_labels is not None:
        options["num_labels"] = config.num_labels
    return options


def bench(
    model: str | nn.Module = "resnet50",
    *,
    mode: str = "both",
    device: str | None = None,
    batch_size: int | str = 32,
    max_batch_size: int | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    steps: int = 10,
    windows: int = 5,
    warmup: int = 3,
    optimizer: str = "sgd",
    lr: float | None = None,
    amp: str = "off",
    channels_last: bool = False,
    compile: bool = False,
    compile_mode: str = "default",
    data: str | Path | None = None,
    workers: int | None = None,
    baseline: bool = True,
    check: bool = True,
    measure_peak: bool = True,
    seed: int = 0,
    seq_len: int | None = None,
    token_dtype: str = "int64",
    hf_config: Mapping[str, Any] | None = None,
    task: str | None = None,
    num_labels: int | None = None,
    progress: ProgressFn | None = None,
    oom_probe: OomProbe | None = None,
) -> BenchResult:
    """Benchmark a reference fine-tune of ``model`` (frozen backbone and/or full) against a plain loop.

    The keyword form of :func:`run_bench`: each keyword is the :class:`BenchConfig` field of the
    same name (``mode`` is ``"frozen"``, ``"full"`` or ``"both"``). ``model`` is a spec the loader
    resolves (``"resnet18"``) or a module, which is copied and never trained.

    A language model (``"hf:gpt2"``, or a module with a ``config.vocab_size``) trains on
    ``batch_size`` x ``seq_len`` token ids with its own loss; ``hf_config``, ``task`` and
    ``num_labels`` go to the ``hf:`` loader.

    Args:
        model: A model spec (``"resnet50"``, ``"timm:NAME"``, ``"hf:gpt2"``, ``"net.py:Net"``) or a module.
        mode: ``"frozen"``, ``"full"`` or ``"both"`` (frozen backbone, everything trainable, or both in turn).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; ``None`` picks the best device found.
        batch_size: Images (or sequences) per step, or ``"auto"`` for the largest that fits.
        max_batch_size: Upper bound of the ``"auto"`` search (default 1024 on a GPU, 64 on the CPU).
        image_size: Side of the square input images; ``None``: the model's default.
        num_classes: Outputs of the fresh head; ``None``: 10, or the ImageFolder's classes.
        steps: Steps per timed window.
        windows: Timed windows per loop (median and spread are taken over them).
        warmup: Untimed steps before the first window.
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adamw"``.
        lr: Learning rate; ``None``: the optimizer's default.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 adds a ``GradScaler``).
        channels_last: Use the channels-last memory format.
        compile: Run the step under ``torch.compile``.
        compile_mode: The ``torch.compile`` mode.
        data: An ImageFolder to read through a ``DataLoader`` instead of synthetic tensors.
        workers: ``DataLoader`` worker processes for ``data``.
        baseline: Also time a plain hand-written loop, interleaved, for the ratio.
        check: Check the freeze after timing (``check_step``, and a guard in frozen mode).
        measure_peak: Time a square matmul for the measured peak (the MFU basis on a CPU).
        seed: Seed of the synthetic inputs and the fresh head.
        seq_len: Tokens per sequence for a language model (default 128).
        token_dtype: Dtype of the token ids (``"int64"`` or ``"int32"``).
        hf_config: Config field overrides for an ``hf:`` model.
        task: The ``hf:`` task (``"sequence-classification"``, ...).
        num_labels: Labels of an ``hf:`` classifier.
        progress: Called as ``progress(phase, done, total)`` while it runs.
        oom_probe: Called with each trial size of ``batch_size="auto"``; raise
            ``torch.OutOfMemoryError`` in it to impose a memory budget.

    Returns:
        The ``BenchResult``: one entry per mode (throughput, step times, FLOPs, MFU, memory, the
        baseline ratio, the freeze check) and the environment.

    Raises:
        TorchscopeError: An option is out of range or does not fit the model (e.g. image options
            with token inputs), or the model cannot be loaded.

    >>> r = bench("resnet18", mode="frozen", device="cpu", batch_size=2, image_size=32,
    ...           steps=1, windows=1, warmup=1, check=False, measure_peak=False)
    >>> r.mode("frozen").harness.stats.img_s_median > 0
    True
    """
    config = BenchConfig(
        model=model if isinstance(model, str) else type(model).__name__,
        modes=modes_of(mode), device=device, batch_size=batch_size, max_batch_size=max_batch_size,
        image_size=image_size, num_classes=num_classes, steps=steps, windows=windows, warmup=warmup,
        optimizer=optimizer, lr=lr, amp=amp, channels_last=channels_last, compile=compile,
        compile_mode=compile_mode, data=None if data is None else str(data), workers=workers,
        baseline=baseline, seed=seed, check=check, measure_peak=measure_peak, seq_len=seq_len,
        token_dtype=token_dtype, hf_config=tuple((hf_config or {}).items()), task=task, num_labels=num_labels,
    )  # fmt: skip
    module = None if isinstance(model, str) else model
    return run_bench(config, module=module, progress=progress, oom_probe=oom_probe)
