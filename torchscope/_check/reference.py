"""The reference fine-tuning step behind ``torchscope check-freeze``: synthetic inputs, cross-entropy
against random labels, an optimizer over the trainable params, checked by :func:`check_step`."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchscope._check.plan import collect_tensors, is_norm_with_stats, module_frozen, select_names, unwrap
from torchscope._check.report import StepReport
from torchscope._check.step import Mode, check_step
from torchscope._freeze import find_head
from torchscope.errors import ForwardError, TorchscopeError

__all__ = ["OPTIMIZERS", "check_freeze", "expected_frozen_names", "synthetic_loss"]


OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")


def expected_frozen_names(
    model: nn.Module,
    *,
    freeze: Sequence[str] = (),
    unfreeze: Sequence[str] = (),
    freeze_backbone: bool = False,
) -> list[str] | None:
    """The param and buffer names the freeze options ask to freeze (None when no option was given).

    Names, not tensors: a tied tensor frozen under one name and expected to train under another
    shows up as a ``tied_conflict`` when these names are passed as ``check_step(frozen=...)``.
    """
    if not (freeze or freeze_backbone):
        return None
    params, buffers = collect_tensors(model)
    names = [n for t in params for n in t.names] + [n for b in buffers for n in b.names]
    selected: set[str] = set()
    if freeze_backbone:
        head = find_head(model)
        selected |= {n for n in names if not (n == head or n.startswith(head + "."))}
    if freeze:
        selected |= select_names(names, list(freeze))
    if unfreeze:
        selected -= select_names(names, list(unfreeze))
    return [n for n in names if n in selected]


def _output_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _output_tensors(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in _output_tensors(v)]
    logits = getattr(out, "logits", None)
    return [logits] if isinstance(logits, torch.Tensor) else []


def synthetic_loss(out: Any, generator: torch.Generator) -> torch.Tensor | None:
    """Cross-entropy of every (N, C, ...) float output against random labels; None if nothing needs grad."""
    losses = []
    for t in _output_tensors(out):
        if not (t.is_floating_point() and t.requires_grad):
            continue
        if t.dim() >= 2:
            labels = torch.randint(0, t.shape[1], (t.shape[0], *t.shape[2:]), generator=generator)
            losses.append(nn.functional.cross_entropy(t.float(), labels.to(t.device)))
        else:
            losses.append(t.float().mean())
    return torch.stack(losses).sum() if losses else None


def check_freeze(
    model: nn.Module,
    *,
    input_size: Sequence[int],
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    steps: int = 1,
    train_bn: bool = True,
    frozen: str | Sequence[str] | None = None,
    mode: Mode = "exact",
    seed: int = 0,
) -> StepReport:
    """Run a reference fine-tuning step on a *copy* of ``model`` and check it with :func:`check_step`.

    Synthetic inputs of ``input_size``, cross-entropy against random labels, an optimizer over the
    trainable params, ``steps`` steps, ``model.train()`` before each; ``train_bn=False`` puts the
    frozen norm layers back in eval mode (the fix for moving running stats). ``model`` is not touched.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    >>> net[:2].requires_grad_(False)  # doctest: +ELLIPSIS
    Sequential(...)
    >>> [v.name for v in check_freeze(net, input_size=(8, 4)).violations]
    ['1.running_mean', '1.running_var', '1.num_batches_tracked']
    >>> check_freeze(net, input_size=(8, 4), train_bn=False).ok
    True
    """
    if optimizer not in OPTIMIZERS:
        raise TorchscopeError(f"optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TorchscopeError(f"steps={steps!r} must be an integer >= 1")
    for label, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not (math.isfinite(value) and value >= 0):
            raise TorchscopeError(f"{label}={value} must be a finite number >= 0")
    size = tuple(input_size)
    if not size or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in size):
        raise TorchscopeError(f"input_size={size!r} must be positive integers, e.g. (2, 3, 224, 224)")
    net = copy.deepcopy(model)
    inner, _ = unwrap(net)
    device = next((t.device for t in [*inner.parameters(), *inner.buffers()]), torch.device("cpu"))
    dtype = next((p.dtype for p in inner.parameters() if p.is_floating_point()), torch.float32)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(size, generator=gen).to(device=device, dtype=dtype)  # a half model gets half inputs
    trainable = [p for p in inner.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer | None = None
    if trainable:
        if optimizer == "sgd":
            opt = torch.optim.SGD(trainable, lr=lr, momentum=momentum, weight_decay=weight_decay)
        elif optimizer == "adam":
            opt = torch.optim.Adam(trainable, lr=lr, betas=(momentum or 0.9, 0.999), weight_decay=weight_decay)
        else:
            opt = torch.optim.AdamW(trainable, lr=lr, betas=(momentum or 0.9, 0.999), weight_decay=weight_decay)
    frozen_modules = module_frozen(inner)
    frozen_norms = [m for name, m in inner.named_modules() if is_norm_with_stats(m) and frozen_modules.get(name)]

    def step() -> None:
        for _ in range(steps):
            net.train()
            if not train_bn:
                for m in frozen_norms:
                    m.eval()
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            try:
                out = net(x)
            except Exception as exc:
                raise ForwardError(
                    f"forward pass on an input of size {tuple(x.shape)} failed: {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}; pass a fitting --input-size"
                ) from None
            loss = synthetic_loss(out, gen)
            if loss is not None:
                loss.backward()
            if opt is not None:
                opt.step()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return check_step(net, step, optimizer=opt, frozen=frozen, mode=mode)
