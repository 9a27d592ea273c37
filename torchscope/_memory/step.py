"""The training step whose memory is predicted: what each option changes, one place.

:class:`StepConfig` holds the options (optimizer, autocast, pure dtype, channels-last, gradient
checkpointing, train/eval); :func:`training_step` builds the callable that runs one step on a model
and batch, the same code under fake tensors (the prediction) and real ones (the truth).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope.errors import TorchscopeError

OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw")
AMP = ("off", "bf16", "fp16")
MODES = ("train", "eval")
MAX_STEPS = 100
LOSS_SCALE = 65536.0
"""GradScaler's initial scale; the fp16 step multiplies the loss by it and unscales grads in place."""

Batch = tuple[tuple[tuple[int, ...], torch.dtype], ...]
"""The inputs of one step as (shape, dtype) pairs; a fresh batch is made for every step."""


@dataclass(frozen=True)
class StepConfig:
    """The options of the predicted step; every one of them changes the memory it needs."""

    optimizer: str = "adamw"
    amp: str = "off"
    dtype: str = "fp32"
    channels_last: bool = False
    grad_checkpointing: bool = False
    mode: str = "train"
    device: str = "cuda"
    steps: int = 2

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("amp", self.amp, AMP),
            ("dtype", self.dtype, ("fp32", "bf16", "fp16")),
            ("mode", self.mode, MODES),
            ("device", self.device, ("cuda", "cpu")),
        ):
            if value not in choices:
                raise TorchscopeError(f"--{name} {value!r} is not one of {', '.join(choices)}")
        if self.amp != "off" and self.dtype != "fp32":
            raise TorchscopeError(
                f"--amp {self.amp} with --dtype {self.dtype}: autocast needs fp32 weights; pick one of them"
            )
        if not 1 <= self.steps <= MAX_STEPS:
            raise TorchscopeError(
                f"--steps {self.steps} must be between 1 and {MAX_STEPS} (the optimizer state exists from "
                "step 2 on; later steps repeat it)"
            )

    @property
    def param_dtype(self) -> torch.dtype:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.dtype]

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]

    def describe(self) -> str:
        """One line naming the step, for the output."""
        if self.mode == "eval":
            return "inference under no_grad, one forward pass"
        opt = {"sgd": "SGD", "sgd-momentum": "SGD momentum 0.9", "adam": "Adam", "adamw": "AdamW"}[
            self.optimizer
        ]
        parts = [f"{self.steps} training steps (forward, cross-entropy, backward, {opt} step)"]
        if self.amp != "off":
            parts.append(f"{self.amp} autocast" + (" with loss scaling" if self.amp == "fp16" else ""))
        if self.dtype != "fp32":
            parts.append(f"pure {self.dtype}")
        if self.channels_last:
            parts.append("channels-last")
        if self.grad_checkpointing:
            parts.append("gradient checkpointing")
        return ", ".join(parts)


def make_optimizer(config: StepConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer | None:
    """The optimizer the step uses; ``foreach`` as torch picks it on the target device.

    torch defaults to the multi-tensor (foreach) kernels on CUDA and to the per-parameter loop on the
    CPU; the choice changes the optimizer step's temporaries, and under fake tensors torch cannot see
    the target device, so it is spelled out here.
    """
    if not params or config.mode == "eval":
        return None
    foreach = config.device == "cuda"
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, foreach=foreach)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    momentum = 0.9 if config.optimizer == "sgd-momentum" else 0.0
    return torch.optim.SGD(params, lr=0.01, momentum=momentum, foreach=foreach)


def make_batch(batch: Batch, config: StepConfig, device: torch.device) -> list[torch.Tensor]:
    """A fresh batch: floats in the step's dtype (channels-last when asked), integers as token ids."""
    out = []
    for shape, dtype in batch:
        if dtype.is_floating_point:
            dt = config.param_dtype if config.dtype != "fp32" else dtype
            fmt = torch.channels_last if config.channels_last and len(shape) == 4 else torch.contiguous_format
            out.append(torch.randn(shape, dtype=dt, device=device).contiguous(memory_format=fmt))
        else:
            out.append(torch.randint(0, 2, shape, dtype=dtype, device=device))
    return out


def logits_of(output: Any) -> torch.Tensor:
    """The tensor the loss is taken of: the output, its ``logits``, or its first tensor."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) or hasattr(output, "logits"):
        found = output.get("logits") if isinstance(output, Mapping) else output.logits
        if isinstance(found, torch.Tensor):
            return found
    if isinstance(output, Sequence):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    shown = f" ({output!r:.40})" if isinstance(output, int | float | str | bool) else ""
    raise TorchscopeError(
        f"the model's forward returned {type(output).__name__}{shown} with no tensor to take a loss of; "
        "return a tensor (or a tuple, list or dict holding one), predict inference only with --mode eval, "
        "or pass your own step= to estimate_memory"
    )


def loss_of(output: Any) -> torch.Tensor:
    """Cross-entropy over the last dimension against random targets (sum for a non-float output)."""
    logits = logits_of(output)
    if not logits.dtype.is_floating_point or logits.dim() < 2:
        return logits.float().sum()
    flat = logits.reshape(-1, logits.shape[-1])
    target = torch.randint(0, logits.shape[-1], (flat.shape[0],), device=logits.device)
    return nn.functional.cross_entropy(flat, target)


@contextlib.contextmanager
def autocast(device_type: str, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast on the tensors' device; nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type, dtype=dtype):
        yield


@contextlib.contextmanager
def grad_checkpointing(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Turn on the model's own gradient checkpointing (Hugging Face, timm, torchvision DenseNet)."""
    if not enabled:
        yield
        return
    owner: Any = model  # the switches are the model library's, not nn.Module's
    if hasattr(owner, "gradient_checkpointing_enable"):
        owner.gradient_checkpointing_enable()
        try:
            yield
        finally:
            owner.gradient_checkpointing_disable()
        return
    if hasattr(owner, "set_grad_checkpointing"):
        owner.set_grad_checkpointing(True)
        try:
            yield
        finally:
            owner.set_grad_checkpointing(False)
        return
    flagged: list[Any] = [
        m for m in model.modules() if isinstance(getattr(m, "memory_efficient", None), bool)
    ]
    if not flagged:
        raise TorchscopeError(
            f"{type(model).__name__} has no gradient checkpointing (no gradient_checkpointing_enable(), "
            "set_grad_checkpointing() or memory_efficient layers); drop --grad-checkpointing"
        )
    before = [m.memory_efficient for m in flagged]
    for m in flagged:
        m.memory_efficient = True
    try:
        yield
    finally:
        for m, value in zip(flagged, before, strict=True):
            m.memory_efficient = value


StepFn = Callable[..., None]


def training_step(config: StepConfig, optimizer: torch.optim.Optimizer | None) -> StepFn:
    """One step of ``config`` on a model and a batch: zero grads, forward, loss, backward, update."""

    def step(
        model: nn.Module, batch: list[torch.Tensor], on_optimizer: Callable[[], Any] | None = None
    ) -> None:
        device_type = batch[0].device.type if batch else "cpu"
        if config.mode == "eval" or (
            optimizer is None and not any(p.requires_grad for p in model.parameters())
        ):
            with torch.no_grad(), autocast(device_type, config.amp_dtype):
                model(*batch)
            return
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        with autocast(device_type, config.amp_dtype):
            loss = loss_of(model(*batch))
        if config.amp == "fp16":
            (loss * LOSS_SCALE).backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if grads:  # GradScaler.unscale_: in place, no copy
                torch._foreach_mul_(grads, 1.0 / LOSS_SCALE)
        else:
            loss.backward()
        del loss
        if optimizer is not None:
            if on_optimizer is not None:
                on_optimizer()
            optimizer.step()

    return step
