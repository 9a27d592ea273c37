"""The freeze guard inside a real Lightning ``Trainer.fit`` (tiny, CPU, a few steps)."""

from __future__ import annotations

import pytest
from test_lightning import FineTune, fit

pytest.importorskip("lightning.pytorch", reason="Lightning not installed: pip install 'torchscope[lightning]'")

from torchscope.errors import FreezeCheckError
from torchscope.integrations.lightning import FreezeGuard

pytestmark = pytest.mark.slow  # a real Trainer.fit: seconds


def test_frozen_batchnorm_in_train_mode_is_caught_at_the_first_step() -> None:
    module = FineTune(eval_frozen_bn=False)
    with pytest.raises(FreezeCheckError, match="by optimizer step 1") as info:
        fit(module, [FreezeGuard()])
    moved = info.value.report.by_kind("frozen_buffer_changed")
    assert {v.name for v in moved} >= {"backbone.1.running_mean", "backbone.1.running_var"}
    assert all("ran in train mode" in v.cause for v in moved)
    opt = module.trainer.optimizers[0]
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def test_the_fixed_fine_tune_passes_every_step() -> None:
    callback = FreezeGuard(expect_updates=True)
    fit(FineTune(eval_frozen_bn=True), [callback], max_steps=4)
    assert [r.guard_step for r in callback.reports] == [1, 2, 3, 4, 4]
    assert all(r.ok for r in callback.reports)


def test_fail_fast_false_stops_training_and_keeps_the_report() -> None:
    callback = FreezeGuard(fail_fast=False, every_n_steps=2)
    trainer = fit(FineTune(eval_frozen_bn=False), [callback], max_steps=6)
    assert trainer.global_step == 2  # checked at step 2, stopped there
    assert [r.guard_step for r in callback.reports] == [2, 2]
    assert callback.reports[0].by_kind("frozen_buffer_changed")
    assert callback.reports[0].by_kind("frozen_buffer_changed")[0].step == 2
