"""What every model source shares: the spec forms, device checks and the wording of errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import torch

from torchscope.errors import SpecError

SPEC_FORMS = "NAME (a torchvision model), timm:NAME, hf:MODEL_TYPE, hf:DIR, package.module:attr or path/to/file.py:attr"


@dataclass(frozen=True)
class BuildRequest:
    """What a model source gets: the spec and every option of :func:`~torchscope.load_model` it may use."""

    spec: str
    kwargs: dict[str, Any]
    pretrained: bool
    # build on meta (no memory, no init); the caller moves the model or loads weights into it
    meta: bool
    device: torch.device
    unsafe_load: bool
    # hf: models only (see :mod:`.hf`): config field overrides, the head, the classifier's labels
    config: Mapping[str, Any] = field(default_factory=dict)
    task: str | None = None
    num_labels: int | None = None


def check_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise SpecError(
                f"device {str(device)!r} is not available on this machine (no CUDA); use cpu or meta"
            )
        return dev
    except (RuntimeError, TypeError, ValueError):
        raise SpecError(
            f"device {str(device)!r} is not a torch device; use cpu, cuda, cuda:0 or meta"
        ) from None


def kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def builder_failed(label: str, kwargs: Mapping[str, Any], exc: BaseException) -> NoReturn:
    """Raise for a model builder (torchvision's, timm's) that failed; call it inside the ``except``.

    With ``--arg`` values (or a ``TypeError``: a keyword the builder does not take) the user's input
    is the cause: a one-line :class:`SpecError` naming the call. A builder failing on its own
    defaults is not the user's input, so its own error goes on unchanged.
    """
    if not kwargs and not isinstance(exc, TypeError):
        raise  # the exception being handled
    raise SpecError(f"building {label}({kwargs_text(kwargs)}) failed: {first_line(exc)}; check the --arg values") from None


def few(items: list[str], n: int = 5) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return "[" + ", ".join(items[:n]) + "]" + more
