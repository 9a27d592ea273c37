"""Lightning callbacks: prove the freeze invariants inside a real ``Trainer.fit``.

Two callbacks, for two questions. ``FreezeGuard`` watches the real run at near-zero cost: it
compares the model against its state when training started after every N-th real optimizer step
(:func:`torchscope.guard`), at ``on_train_batch_end``, the first hook that sees the stepped
weights. ``CheckFreeze`` is a probe: it proves the invariants on a step it controls, with causes
read from that step, and puts everything back.

``CheckFreeze`` runs :func:`torchscope.check_step` on the first training step and then every N
steps. The check is a probe: it runs your ``training_step`` on the real batch with the real
optimizer, compares what moved against what must not move, and puts everything back (params,
buffers, grads, optimizer state, RNG, train/eval flags: ``check_step(..., restore=True)``).
Lightning then runs the real step as usual. A violation stops training at once with the report.

>>> from torchscope.integrations.lightning import CheckFreeze        # doctest: +SKIP
>>> trainer = L.Trainer(callbacks=[CheckFreeze(every_n_steps=500)])  # doctest: +SKIP

Lightning is imported when this module is imported, never by ``import torchscope``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - exercised only without lightning
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError:
        raise ImportError(
            "torchscope.integrations.lightning needs Lightning; pip install 'torchscope[lightning]'"
        ) from exc

import torch

from torchscope._guard.adapter import GuardSettings
from torchscope.errors import FreezeCheckError, TorchscopeError


class CheckFreeze(pl.Callback):
    """Run ``check_step`` on the first training step and every ``every_n_steps`` steps.

    Args:
        every_n_steps: check again every N optimizer steps (``trainer.global_step``); ``None``
            checks only the first step.
        frozen: what must stay frozen, as glob patterns; by default the params with
            ``requires_grad=False`` and the buffers of modules whose own params are all frozen.
        mode: ``"exact"`` (bit for bit, within ``atol``) or ``"fingerprint"`` (O(1) memory).
        atol: tolerance of ``exact`` mode.
        fail_fast: raise :class:`FreezeCheckError` on a violation (default); otherwise only keep
            the report in :attr:`reports`.

    >>> CheckFreeze(every_n_steps=100, frozen=["backbone.*"]).every_n_steps
    100
    """

    def __init__(
        self,
        every_n_steps: int | None = None,
        *,
        frozen: str | Sequence[str] | None = None,
        mode: Literal["exact", "fingerprint"] = "exact",
        atol: float = 0.0,
        fail_fast: bool = True,
    ) -> None:
        super().__init__()
        if every_n_steps is not None and (
            isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1
        ):
            raise TorchscopeError(f"every_n_steps={every_n_steps!r} must be an integer >= 1, or None for the first step only")
        if mode not in ("exact", "fingerprint"):
            raise TorchscopeError(f"mode={mode!r} must be 'exact' or 'fingerprint'")
        self.every_n_steps = every_n_steps
        self.frozen = [frozen] if isinstance(frozen, str) else (list(frozen) if frozen is not None else None)
        self.mode = mode
        self.atol = atol
        self.fail_fast = fail_fast
        self.reports: list[tuple[int, Any]] = []
        """``(global_step, StepCheck)`` of every check run so far."""
        self._first_done = False

    def _due(self, step: int) -> bool:
        if not self._first_done:
            return True
        return self.every_n_steps is not None and step % self.every_n_steps == 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self._due(step):
            return
        self._first_done = True
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        report = self._probe(trainer, pl_module, batch, batch_idx, optimizer)
        self.reports.append((step, report))
        if not report.ok and self.fail_fast:
            raise FreezeCheckError(
                f"torchscope CheckFreeze: training step {step} breaks the freeze invariants\n{report}", report
            )

    def _probe(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        optimizer: torch.optim.Optimizer | None,
    ) -> Any:
        from torchscope import check_step

        precision = getattr(trainer, "precision_plugin", None)
        context: Callable[[], AbstractContextManager[Any]] = getattr(precision, "train_step_context", nullcontext)

        def step() -> None:
            with context():
                out = pl_module.training_step(batch, batch_idx)
            if not pl_module.automatic_optimization:
                return  # manual optimization: training_step did backward and step itself
            loss = out.get("loss") if isinstance(out, Mapping) else out
            if loss is None or optimizer is None:
                return  # Lightning skips the step too
            pl_module.optimizer_zero_grad(trainer.current_epoch, batch_idx, optimizer)
            loss.backward()
            optimizer.step()

        # The probe's self.log() calls would be recorded as metrics of this hook; silence them.
        saved = {name: pl_module.__dict__.get(name) for name in ("log", "log_dict")}
        pl_module.log = _no_log  # type: ignore[method-assign]
        pl_module.log_dict = _no_log  # type: ignore[method-assign]
        try:
            return check_step(
                pl_module,
                step,
                optimizer=optimizer,
                frozen=self.frozen,
                mode=self.mode,
                atol=self.atol,
                restore=True,
            )
        finally:
            for name, value in saved.items():
                if value is None:
                    pl_module.__dict__.pop(name, None)
                else:
                    pl_module.__dict__[name] = value


def _no_log(*args: Any, **kwargs: Any) -> None:
    return None


class FreezeGuard(GuardSettings, pl.Callback):
    """The freeze guard over ``Trainer.fit``: starts at ``on_train_start`` with the module and its
    first optimizer, checks at ``on_train_batch_end`` after every ``every_n_steps``-th real optimizer
    step (a step AMP skipped, or a micro-batch of gradient accumulation, is none), checks once more
    at ``on_train_end``. A violation raises :class:`~torchscope.errors.FreezeCheckError`; with
    ``fail_fast=False`` it sets ``trainer.should_stop`` and keeps the report in :attr:`reports`.
    The arguments are those of the HF adapter (:mod:`torchscope.integrations.transformers`).

    >>> FreezeGuard(every_n_steps=50).every_n_steps
    50
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_guard(pl_module, trainer.optimizers[0] if trainer.optimizers else None)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.check_due():
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close_guard()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.close_guard(check=False)


__all__ = ["CheckFreeze", "FreezeCheckError", "FreezeGuard"]
