"""The one reference fine-tuning step that ``check-freeze`` and ``report`` run: its settings, their
defaults, their valid ranges, and how the output names the step that was checked. No torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torchscope.errors import SpecError

__all__ = ["DEFAULT_STEP", "OPTIMIZERS", "ReferenceStep"]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class ReferenceStep:
    """How the reference step trains the copy of the model: a typical fine-tuning recipe.

    ``momentum`` is SGD's momentum, or beta1 for Adam/AdamW (beta2 is 0.999). ``train_bn=True``
    leaves frozen norm layers in train mode, as ``model.train()`` does (the bug the check exists to
    catch); ``False`` puts them in eval mode (the fix). Every value is checked on construction, so a
    value torch would reject is an error naming the value and its valid range, before any work.

    >>> ReferenceStep().describe()
    '1 sgd step (lr=0.01, momentum=0.9, weight_decay=0.0001), frozen norm layers in train mode'
    >>> ReferenceStep(optimizer="adam", momentum=5)
    Traceback (most recent call last):
    ...
    torchscope.errors.SpecError: momentum=5 is out of range: adam uses it as beta1, which must be in [0, 1)
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    steps: int = 1
    train_bn: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        opt = self.optimizer.lower() if isinstance(self.optimizer, str) else self.optimizer
        if opt not in OPTIMIZERS:
            raise SpecError(f"optimizer={self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        object.__setattr__(self, "optimizer", opt)
        for label in ("lr", "momentum", "weight_decay"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"{label}={value!r} must be a number")
            if not (math.isfinite(value) and value >= 0):
                raise SpecError(f"{label}={value} is out of range: it must be a finite number >= 0")
        if self.momentum >= 1:
            use = "momentum" if opt == "sgd" else "beta1"
            raise SpecError(
                f"momentum={self.momentum} is out of range: {opt} uses it as {use}, which must be in [0, 1)"
            )
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise SpecError(f"steps={self.steps!r} is out of range: it must be an integer >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise SpecError(f"seed={self.seed!r} must be an integer")

    @property
    def bn_mode(self) -> str:
        """Where the frozen norm layers ran: ``"train"`` or ``"eval"``."""
        return "train" if self.train_bn else "eval"

    def describe(self) -> str:
        """The step in words, for the output: which loop was checked."""
        steps = f"{self.steps} {self.optimizer} step{'s' if self.steps != 1 else ''}"
        return (
            f"{steps} (lr={self.lr:g}, momentum={self.momentum:g}, weight_decay={self.weight_decay:g}), "
            f"frozen norm layers in {self.bn_mode} mode"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "steps": self.steps,
            "bn_mode": self.bn_mode,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceStep:
        """The inverse of :meth:`to_dict`."""
        return cls(
            optimizer=d["optimizer"], lr=d["lr"], momentum=d["momentum"], weight_decay=d["weight_decay"],
            steps=d["steps"], train_bn=d["bn_mode"] == "train", seed=d["seed"],
        )


#: The defaults every command that runs the reference step uses.
DEFAULT_STEP = ReferenceStep()
