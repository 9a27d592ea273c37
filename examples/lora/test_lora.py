"""A worked test suite for a LoRA fine-tune: one test per PEFT pitfall (see docs/transformers.md).

Each test checks the real code in lora.py, then writes the mistake the way users write it and shows
the check catching it, so you can see the failure message you would get.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="examples/lora needs transformers: pip install 'torchscope[hf]'")
pytest.importorskip("peft", reason="examples/lora needs peft: pip install 'torchscope[hf]'")

import torch
from lora import (
    build_model,
    enable_checkpointing,
    make_optimizer,
    merge_for_release,
    predict,
    save_adapter,
    train_step,
)
from torch import nn

import torchscope
from torchscope.testing import (
    assert_adapters_only_trainable,
    assert_base_unchanged,
    assert_merge_equivalent,
    assert_step_ok,
)

Batch = dict[str, torch.Tensor]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")  # transformers' and peft's deprecation notes


def inputs_of(batch: Batch) -> Batch:
    return {k: v for k, v in batch.items() if k != "labels"}


# 0. A correct LoRA step: base frozen, every adapter updated, and no false alarm on lora_A, whose
#    grad is exactly zero on the first step (peft starts lora_B at zero): a note, not a violation.
def test_correct_step(model: nn.Module, batch: Batch) -> None:
    opt = make_optimizer(model)
    assert_adapters_only_trainable(model)
    assert_base_unchanged(model, lambda: train_step(model, opt, batch), optimizer=opt)
    report = torchscope.check_step(model, lambda: train_step(model, opt, batch), optimizer=opt)
    assert report.ok
    fresh = build_model()
    opt = torch.optim.SGD([p for p in fresh.parameters() if p.requires_grad], lr=0.1)  # no decay at all
    report = torchscope.check_step(fresh, lambda: train_step(fresh, opt, batch), optimizer=opt)
    assert report.ok and report.caveats[0].startswith("4 lora_A params did not change: on the first step")


# 1. target_modules copied from a Llama recipe (q_proj, v_proj) match nothing in BERT: peft stops at
#    "not found"; torchscope names BERT's own names for them.
def test_target_modules_match(model: nn.Module, batch: Batch, tmp_path: Path) -> None:
    save_adapter(model, tmp_path / "base", tmp_path / "adapter")
    loaded = torchscope.load_model(f"hf:{tmp_path / 'adapter'}")
    assert_adapters_only_trainable(loaded)

    from lora import lora_config

    lora_config(
        target_modules=["q_proj", "v_proj"], base_model_name_or_path=str(tmp_path / "base")
    ).save_pretrained(tmp_path / "recipe")
    with pytest.raises(
        torchscope.TorchscopeError, match=r"did you mean 'query' for 'q_proj', 'value' for 'v_proj'"
    ):
        torchscope.load_model(f"hf:{tmp_path / 'recipe'}")


# 2. Gradient checkpointing on a frozen-embedding model needs enable_input_require_grads(); without
#    it (what transformers < 4.35 did) no adapter inside a checkpointed block gets a grad.
def test_gradient_checkpointing(model: nn.Module, batch: Batch) -> None:
    enable_checkpointing(model)
    opt = make_optimizer(model)
    assert_step_ok(model, lambda: train_step(model, opt, batch), optimizer=opt)

    broken = build_model()
    broken.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    broken.disable_input_require_grads()
    opt = make_optimizer(broken)
    with pytest.raises(
        AssertionError, match=r"8 tensors \(.*lora_A.*\): it got no grad: gradient checkpointing"
    ):
        assert_step_ok(broken, lambda: train_step(broken, opt, batch), optimizer=opt)


# 3. A new classification head must be in modules_to_save (task_type="SEQ_CLS" does it): otherwise
#    peft freezes it with the base and it never leaves its random init.
def test_head_is_trained(model: nn.Module, batch: Batch) -> None:
    assert_adapters_only_trainable(model)
    assert "classifier" in model.peft_config["default"].modules_to_save

    no_task = build_model(task_type=None)
    with pytest.raises(
        AssertionError,
        match=r"2 tensors .*the task head 'classifier' .* is frozen and not in modules_to_save",
    ):
        assert_adapters_only_trainable(no_task)
    opt = make_optimizer(no_task)
    report = torchscope.check_step(no_task, lambda: train_step(no_task, opt, batch), optimizer=opt)
    assert [v.name for v in report.by_kind("head_not_trained")] == [
        "base_model.model.classifier.weight",
        "base_model.model.classifier.bias",
    ]


# 4. Evaluate in eval mode: training leaves the model in train mode, with lora_dropout live.
def test_eval_without_dropout(model: nn.Module, batch: Batch) -> None:
    train_step(model, make_optimizer(model), batch)
    predict(model, batch)  # puts the model in eval mode
    assert torch.equal(predict(model, batch), predict(model, batch))
    assert_merge_equivalent(model, inputs_of(batch), atol=1e-5)

    train_step(model, make_optimizer(model), batch)  # train mode again, then an eval that forgets .eval()
    with pytest.raises(
        AssertionError,
        match=r"train mode, so 12 dropout modules \(4 of them lora_dropout\) are live .* nothing was compared",
    ) as info:
        assert_merge_equivalent(model, inputs_of(batch))
    assert "base_model.model.bert.encoder.layer.0.attention.self.query.lora_dropout.default" in str(
        info.value
    )


# 5. The merged model must compute what the adapter model computes: merge in float32.
def test_merge_is_equivalent(model: nn.Module, batch: Batch) -> None:
    opt = make_optimizer(model)
    for _ in range(3):
        train_step(model, opt, batch)
    expected = predict(model, batch)
    assert_merge_equivalent(model, inputs_of(batch), atol=1e-5)
    merged = merge_for_release(copy.deepcopy(model)).eval()
    torch.testing.assert_close(merged(**inputs_of(batch)).logits, expected, atol=1e-5, rtol=0)

    half = build_model().to(torch.bfloat16)  # trained and merged in bfloat16
    opt = make_optimizer(half)
    for _ in range(3):
        train_step(half, opt, batch)
    predict(half, batch)
    with pytest.raises(AssertionError, match=r"the base weights are bfloat16: merge_and_unload\(\) writes"):
        assert_merge_equivalent(half, inputs_of(batch), atol=1e-5)
