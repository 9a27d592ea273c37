"""What the run resolved from a :class:`~torchscope._bench.schema.BenchConfig` (device, sizes,
process group): the :class:`Plan` that the per-mode code reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from torchscope._bench.device import Dist
from torchscope._bench.schema import MatmulPeak, OomProbe, ProgressFn


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
