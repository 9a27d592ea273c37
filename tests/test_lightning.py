"""CheckFreeze: the Lightning callback running check_step inside Trainer.fit."""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch", reason="Lightning not installed: pip install 'torchscope[lightning]'")

from torchscope.errors import TorchscopeError  # noqa: E402
from torchscope.integrations.lightning import CheckFreeze, FreezeCheckError  # noqa: E402


class FineTune(pl.LightningModule):
    """A frozen conv backbone with BatchNorm and a trainable head, as users write it."""

    def __init__(self, *, eval_frozen_bn: bool, weight_decay: float = 0.0, zero_to_none: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(4, 3)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.eval_frozen_bn = eval_frozen_bn
        self.weight_decay = weight_decay
        self.zero_to_none = zero_to_none

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def on_train_epoch_start(self) -> None:
        if self.eval_frozen_bn:
            self.backbone.eval()  # the fix: frozen BatchNorm stays in eval after model.train()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=self.zero_to_none)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = self.parameters() if self.weight_decay else self.head.parameters()
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=self.weight_decay)


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(24, 3, 6, 6, generator=g), torch.randint(0, 3, (24,), generator=g))
    return DataLoader(data, batch_size=4, shuffle=False)


def fit(module: pl.LightningModule, callbacks: list[Any], max_steps: int = 5) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        callbacks=callbacks,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about num_workers etc.
        trainer.fit(module, loader())
    return trainer


def test_batchnorm_drift_fails_fast_on_the_first_step_with_the_report() -> None:
    module = FineTune(eval_frozen_bn=False)
    cb = CheckFreeze(every_n_steps=2)
    with pytest.raises(FreezeCheckError, match=r"training step 0 breaks the freeze invariants") as info:
        fit(module, [cb])
    violations = info.value.report.to_dict()["violations"]
    assert sorted((v["kind"], v["name"]) for v in violations) == [
        ("frozen_buffer_changed", f"backbone.1.{b}") for b in ("num_batches_tracked", "running_mean", "running_var")
    ]
    assert [step for step, _ in cb.reports] == [0]


def test_correct_finetune_is_checked_on_step_0_and_every_n_and_the_probe_changes_nothing() -> None:
    checked = FineTune(eval_frozen_bn=True)
    cb = CheckFreeze(every_n_steps=2)
    fit(checked, [cb], max_steps=5)
    assert [step for step, _ in cb.reports] == [0, 2, 4]
    assert all(report.ok for _, report in cb.reports)

    # The probe restores everything: the same run without the callback ends with the same weights.
    plain = FineTune(eval_frozen_bn=True)
    fit(plain, [], max_steps=5)
    for (name, a), (_, b) in zip(checked.state_dict().items(), plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(checked.head.weight, FineTune(eval_frozen_bn=True).head.weight)


def test_frozen_params_in_a_weight_decay_group_fail_fast_with_the_fix() -> None:
    # configure_optimizers hands every param, frozen ones included, to SGD with weight decay.
    module = FineTune(eval_frozen_bn=True, weight_decay=1e-2, zero_to_none=False)
    with pytest.raises(FreezeCheckError) as info:
        fit(module, [CheckFreeze()])
    violations = info.value.report.to_dict()["violations"]
    assert {v["kind"] for v in violations} == {"optimizer_frozen_param"}
    assert {v["name"] for v in violations} == {"backbone.0.weight", "backbone.0.bias", "backbone.1.weight", "backbone.1.bias"}
    assert "weight_decay=0.01" in str(info.value)


def test_fail_fast_off_keeps_the_reports_and_training_goes_on() -> None:
    cb = CheckFreeze(every_n_steps=3, fail_fast=False)
    trainer = fit(FineTune(eval_frozen_bn=False), [cb], max_steps=4)
    assert trainer.global_step == 4
    assert [(step, report.ok) for step, report in cb.reports] == [(0, False), (3, False)]


def test_bad_arguments() -> None:
    with pytest.raises(TorchscopeError, match=r"every_n_steps=0 must be an integer >= 1"):
        CheckFreeze(every_n_steps=0)
    with pytest.raises(TorchscopeError, match=r"mode='fast' must be 'exact' or 'fingerprint'"):
        CheckFreeze(mode="fast")


@pytest.mark.slow
def test_import_torchscope_does_not_import_lightning() -> None:
    code = "import sys, torchscope, torchscope.integrations; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
