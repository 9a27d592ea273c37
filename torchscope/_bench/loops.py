"""The timed loops: torchscope's training step and window, the plain baseline loop, warm-up and FLOPs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchscope._bench.data import Batches
from torchscope._bench.device import Clock
from torchscope._bench.stats import median
from torchscope.errors import TorchscopeError

#: The learning rate of each optimizer when none is given.
DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}


def logits(out: Any) -> torch.Tensor:
    """The main logits of a classifier's output (inception/googlenet return aux logits in train mode)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TorchscopeError(
        f"the model returned {type(out).__name__}, not logits; bench needs a classifier that returns a tensor"
    )


def make_optimizer(name: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The reference recipes' optimizers: SGD momentum 0.9 / wd 1e-4, AdamW wd 0.05."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.05)


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


#: ``loss(forward, *batch)``: runs the forward on one batch and returns the loss to backpropagate.
LossFn = Callable[..., torch.Tensor]


class ImageLoss:
    """A classifier's loss on ``(images, targets)``: ``criterion`` of its main logits."""

    def __init__(self, criterion: nn.Module) -> None:
        self.criterion = criterion

    def __call__(self, forward: Callable[..., Any], images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits(forward(images)), targets)


class TrainStep:
    """torchscope's training step: forward and loss under autocast, backward, optimizer step.

    Called with one batch's arguments (``images, targets``, or a token batch dict).
    """

    def __init__(
        self,
        forward: Callable[..., Any],
        loss: LossFn,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        device: torch.device,
        amp_dtype: torch.dtype | None,
    ) -> None:
        self.forward = forward
        self.loss = loss
        self.optimizer = optimizer
        self.scaler = scaler
        self.device = device
        self.amp_dtype = amp_dtype

    def __call__(self, *batch: Any) -> torch.Tensor:
        with _autocast(self.device, self.amp_dtype):
            loss = self.loss(self.forward, *batch)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss


def harness_window(step: TrainStep, batches: Any, steps: int) -> None:
    """``steps`` of torchscope's step, untimed inside: the caller's clock brackets the window."""
    if batches.fixed is not None:
        batch = batches.fixed
        for _ in range(steps):
            step(*batch)
    else:
        for _ in range(steps):
            step(*batches.next())


def _plain_update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    # the baselines' backward and update, as the reference scripts write it
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def baseline_window(
    model: Callable[[torch.Tensor], Any],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    batches: Batches,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    steps: int,
) -> None:
    """``steps`` of the plain loop a user writes, on the same model, optimizer and batches."""
    # The loop a user writes after torchvision's reference train_one_epoch, minus its logging:
    # nothing of torchscope's step, batch or timing helpers is used here.
    fixed = batches.fixed
    for _ in range(steps):
        if fixed is not None:
            image, target = fixed
        else:
            image, target = batches.raw()
            image = image.to(device, non_blocking=True)
            if channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            target = target.to(device, non_blocking=True)
        if amp_dtype is None:
            output = model(image)
            if not isinstance(output, torch.Tensor):
                output = logits(output)
            loss = criterion(output, target)
        else:
            with torch.autocast(device.type, dtype=amp_dtype):
                output = model(image)
                if not isinstance(output, torch.Tensor):
                    output = logits(output)
                loss = criterion(output, target)
        _plain_update(loss, optimizer, scaler)


def token_baseline_window(
    model: Callable[..., Any],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    steps: int,
) -> None:
    """``steps`` of the plain loop a Hugging Face user writes, on the same model, optimizer and batch."""
    # the loop of transformers' own examples (no Trainer): the model computes its loss from labels
    for _ in range(steps):
        if amp_dtype is None:
            loss = model(**batch).loss
        else:
            with torch.autocast(device.type, dtype=amp_dtype):
                loss = model(**batch).loss
        _plain_update(loss, optimizer, scaler)


def count_flops(step: TrainStep, batches: Any) -> int:
    """FLOPs of one real step (forward, backward, optimizer), counted by the dispatcher."""
    batch = batches.next()
    counter = FlopCounterMode(display=False)
    with counter:
        step(*batch)
    return int(counter.get_total_flops())


def warm_up(
    step: TrainStep, batches: Any, clock: Clock, warmup: int, report: Callable[[int, int], None]
) -> list[float]:
    """At least ``warmup`` steps, then on until step times settle (compilation, autotune), capped."""
    times: list[float] = []
    cap = 3 * warmup + 3
    while len(times) < cap:
        batch = batches.next()
        clock.start()
        step(*batch)
        times.append(clock.stop())
        report(len(times), max(warmup, len(times)))
        if len(times) >= warmup and _settled(times):
            break
    return times


def _settled(times: Sequence[float]) -> bool:
    # the first step always carries one-time costs, so at least two are needed to judge
    if len(times) < 2:
        return False
    recent = list(times[-3:]) if len(times) > 3 else list(times[1:])
    return max(recent) <= 1.25 * median(recent)
