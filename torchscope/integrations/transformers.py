"""Hugging Face ``Trainer`` callback: the freeze guard inside a real ``Trainer.train()``.

``FreezeGuard`` maps the ``Trainer``'s events onto :func:`torchscope.guard` and adds nothing of its
own: the guard starts at ``on_train_begin`` (with the model and the real optimizer, unwrapped from
Accelerate's), counts real optimizer steps (a step AMP's scaler skipped does not count; gradient
accumulation counts updates), and checks at ``on_optimizer_step`` every ``every_n_steps`` real
steps. A violation raises :class:`~torchscope.errors.FreezeCheckError` at once; with
``fail_fast=False`` it sets ``control.should_training_stop`` and keeps the report.

>>> from torchscope.integrations.transformers import FreezeGuard        # doctest: +SKIP
>>> trainer = Trainer(model, args, train_dataset=ds, callbacks=[FreezeGuard()])  # doctest: +SKIP

transformers is imported when this module is imported, never by ``import torchscope``.
"""

from __future__ import annotations

from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - exercised only without transformers
    raise ImportError("torchscope.integrations.transformers needs transformers; pip install 'torchscope[hf]'") from exc

from torchscope._guard.adapter import GuardSettings
from torchscope.errors import FreezeCheckError

__all__ = ["FreezeCheckError", "FreezeGuard"]


class FreezeGuard(GuardSettings, TrainerCallback):  # type: ignore[misc]
    """Watch a ``Trainer.train()`` run and fail the moment a frozen tensor moves.

    Args:
        every_n_steps: check after every N-th real optimizer step.
        frozen: what must stay frozen, as glob patterns; by default what is frozen when training
            begins (``requires_grad=False`` params, buffers of modules whose params are all frozen).
        mode: ``"fingerprint"`` (8 bytes per tensor) or ``"exact"`` (one copy, reports max |change|).
        expect_updates: also check that every trainable param got a grad and moved.
        fail_fast: raise at once (default); otherwise stop training and keep the report
            (:attr:`report`, :attr:`reports`).
        content: ``"sweep"`` (default: frozen params outside the optimizer are read by version
            counter and sample at every check, every byte within ``sweep_checks`` checks) or
            ``"every-step"`` (every frozen byte at every check); see :func:`torchscope.guard`.
        sweep_checks: the checks the sweep takes to read every byte (None: about 4 MiB per check).

    >>> FreezeGuard(every_n_steps=10).every_n_steps
    10
    """

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       **kwargs: Any) -> None:  # fmt: skip
        self.start_guard(model, optimizer)

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.check_due():
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close_guard()
