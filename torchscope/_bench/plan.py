"""A checked :class:`BenchConfig` and what the run resolved from it (device, sizes, process group).

:func:`validate` rejects every bad setting before anything is loaded or allocated; :class:`Plan` is
what the per-mode code reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from torchscope._bench.device import Dist
from torchscope._bench.schema import (
    AMP_MODES,
    COMPILE_MODES,
    MODES,
    OPTIMIZERS,
    BenchConfig,
    MatmulPeak,
    OomProbe,
    ProgressFn,
)
from torchscope.errors import TorchscopeError


def _positive(name: str, value: int | None, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TorchscopeError(f"{name}={value!r} must be an integer >= {minimum}")


def validate(config: BenchConfig) -> None:
    """Raise a :class:`TorchscopeError` naming the first setting of ``config`` that cannot be run."""
    if (
        not config.modes
        or any(m not in MODES for m in config.modes)
        or len(set(config.modes)) < len(config.modes)
    ):
        raise TorchscopeError(f"modes {config.modes!r} must name frozen and/or full, each once")
    if config.amp not in AMP_MODES:
        raise TorchscopeError(f"amp {config.amp!r} is not one of {', '.join(AMP_MODES)}")
    if config.optimizer not in OPTIMIZERS:
        raise TorchscopeError(f"optimizer {config.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if config.compile_mode not in COMPILE_MODES:
        raise TorchscopeError(
            f"compile mode {config.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}"
        )
    if config.batch_size != "auto":
        if isinstance(config.batch_size, str):
            raise TorchscopeError(f"batch size {config.batch_size!r} must be a positive integer or 'auto'")
        _positive("batch_size", config.batch_size)
    _positive("steps", config.steps)
    _positive("windows", config.windows)
    _positive("warmup", config.warmup)
    _positive("image_size", config.image_size, 8)
    _positive("num_classes", config.num_classes, 2)
    _positive("max_batch_size", config.max_batch_size)
    _positive("workers", config.workers, 0)
    lr = config.lr
    if lr is not None and not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise TorchscopeError(f"lr={lr!r} must be a positive number, e.g. 0.01")


@dataclass
class Plan:
    """Everything one mode's run reads: the resolved settings, the callbacks and the process group."""

    spec: str | nn.Module
    device: torch.device
    batch_size: int | None  # None: search it
    max_batch_size: int
    image_size: int
    num_classes: int
    steps: int
    windows: int
    warmup: int
    optimizer: str
    lr: float
    amp: str
    channels_last: bool
    compile_mode: str | None
    data: Path | None
    workers: int
    baseline: bool
    check: bool
    seed: int
    progress: ProgressFn | None
    oom_probe: OomProbe | None
    dist: Dist | None
    peak: MatmulPeak | None

    def report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]

    def scaler(self) -> torch.amp.GradScaler | None:
        """A fresh GradScaler for fp16 autocast, None otherwise."""
        return torch.amp.GradScaler(self.device.type) if self.amp == "fp16" else None
