"""``summary(device=...)`` without touching the user's model.

torchinfo calls ``model.to(device)`` and leaves the model there. Here the forward pass runs on the
device asked through :func:`torch.func.functional_call` with the parameters and buffers moved
there, so the model keeps its own tensors, values and flags. On ``meta`` nothing is copied: a
meta tensor has no storage, so a CPU model of any size is summarised without its weights twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from torchscope._parsing import parse_device
from torchscope.errors import SpecError

Runner = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def target_device(device: torch.device | str | None) -> torch.device | None:
    """The device asked for, checked: one this machine has (``cpu`` and ``meta`` always)."""
    if device is None:
        return None
    dev = device if isinstance(device, torch.device) else torch.device(parse_device(str(device), option="device"))
    backend: Any = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    if dev.type not in ("cpu", "meta"):
        if backend is None or not backend.is_available():
            raise SpecError(
                f"device {str(device)!r} is not available on this machine (no {dev.type.upper()}); use cpu or meta"
            )
        count = backend.device_count() if hasattr(backend, "device_count") else 1
        if dev.index is not None and dev.index >= count:
            raise SpecError(f"device {str(device)!r}: there are {count} {dev.type} device(s), numbered from 0")
    return dev


def _on(t: torch.Tensor, dev: torch.device) -> bool:
    return t.device.type == dev.type and (dev.index is None or t.device.index == dev.index)


def needs_move(model: nn.Module, dev: torch.device | None) -> bool:
    """Whether any parameter or buffer of ``model`` is elsewhere than ``dev``."""
    if dev is None:
        return False
    return not all(_on(t, dev) for t in (*model.parameters(), *model.buffers()))


def runner(model: nn.Module, dev: torch.device | None) -> Runner:
    """A function that calls ``model`` as if it were on ``dev``, leaving the model where it is."""
    if not needs_move(model, dev):
        return lambda args, kwargs: model(*args, **kwargs)
    if isinstance(model, torch.jit.ScriptModule):
        raise SpecError(
            f"device={str(dev)!r} but the TorchScript model is elsewhere; move it with model.to({str(dev)!r})"
        )
    state: dict[str, torch.Tensor] = {
        name: t.detach().to(dev) for name, t in (*model.named_parameters(), *model.named_buffers())
    }

    def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return torch.func.functional_call(model, state, args, kwargs, tie_weights=True, strict=False)

    return call


__all__ = ["Runner", "needs_move", "runner", "target_device"]
