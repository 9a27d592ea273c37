"""What the run resolved from a :class:`~torchscope._bench.schema.BenchConfig` (device, sizes,
process group): the :class:`Plan` that the per-mode code reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchscope._bench.data import Batches
from torchscope._bench.device import Dist
from torchscope._bench.lm import TokenBatches, TokenLoss
from torchscope._bench.loops import ImageLoss, LossFn
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
    seq_len: int | None = None  # token inputs of this length (a language model), else images
    token_dtype: torch.dtype = torch.int64
    hf: Mapping[str, Any] = field(default_factory=dict)  # the hf: loader's config/task/num_labels

    @property
    def tokens(self) -> bool:
        return self.seq_len is not None

    def per_step(self, batch_size: int) -> int:
        """What one step processes, in the throughput's unit: images, or tokens (batch x length)."""
        return batch_size * (self.seq_len or 1)

    def report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]

    def batches(
        self, model: nn.Module, batch_size: int, loader: Any | None = None, sampler: Any | None = None
    ) -> Batches | TokenBatches:
        """The batches of one run: a token batch for a language model, else images (or ``loader``'s)."""
        if self.seq_len is not None:
            return TokenBatches(model, self.device, batch_size, self.seq_len, self.token_dtype, self.seed)
        return Batches(
            self.device, batch_size, self.image_size, self.num_classes, self.channels_last, loader, sampler
        )

    def loss(self) -> LossFn:
        """The step's loss: the model's own for a language model (check-freeze's), else cross-entropy."""
        return TokenLoss(self.seed) if self.seq_len is not None else ImageLoss(nn.CrossEntropyLoss())

    def scaler(self) -> torch.amp.GradScaler | None:
        """A fresh GradScaler for fp16 autocast, None otherwise."""
        return torch.amp.GradScaler(self.device.type) if self.amp == "fp16" else None
