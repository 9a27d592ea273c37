"""The freeze guard inside a real ``Trainer.train()`` on CPU, on small models built from configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hf_tiny import tiny_config

transformers = pytest.importorskip("transformers")
from torchscope.errors import FreezeCheckError  # noqa: E402
from torchscope.integrations.transformers import FreezeGuard  # noqa: E402

pytestmark = pytest.mark.slow  # each builds a Trainer and trains it: seconds, not milliseconds


def args(tmp_path: Path, **extra: Any) -> Any:
    base = {
        "output_dir": str(tmp_path), "max_steps": 3, "per_device_train_batch_size": 2, "report_to": [],
        "use_cpu": True, "save_strategy": "no", "logging_strategy": "no", "disable_tqdm": True,
        "learning_rate": 1e-2, "dataloader_num_workers": 0,
    }  # fmt: skip
    return transformers.TrainingArguments(**{**base, **extra})


def token_data(n: int = 8, vocab: int = 128) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": (ids := torch.randint(0, vocab, (8,), generator=g)), "labels": ids.clone()} for _ in range(n)]


def image_data(n: int = 8) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"pixel_values": torch.randn(3, 16, 16, generator=g), "labels": torch.tensor(i % 3)} for i in range(n)]


def tiny_resnet() -> Any:
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1], num_labels=3, layer_type="basic"
    )
    return transformers.ResNetForImageClassification(config)


def tiny_llama() -> Any:
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(tiny_config("llama"))


def test_frozen_vision_backbone_with_batchnorm_is_caught_in_train_mode(tmp_path: Path) -> None:
    model = tiny_resnet()
    model.resnet.requires_grad_(False)  # the backbone frozen by its flags only: Trainer calls model.train()
    trainer = transformers.Trainer(model, args(tmp_path), train_dataset=image_data(), callbacks=[FreezeGuard()])
    with pytest.raises(FreezeCheckError, match="by optimizer step 1") as info:
        trainer.train()
    report = info.value.report
    moved = report.by_kind("frozen_buffer_changed")
    assert moved and all(v.name.endswith(("running_mean", "running_var", "num_batches_tracked")) for v in moved)
    assert all("ran in train mode" in v.cause for v in moved)
    assert not report.by_kind("frozen_param_changed")  # the weights themselves stayed put
    opt = trainer.optimizer.optimizer
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def test_fail_fast_false_stops_training_and_keeps_the_report(tmp_path: Path) -> None:
    model = tiny_resnet()
    model.resnet.requires_grad_(False)
    callback = FreezeGuard(fail_fast=False)
    trainer = transformers.Trainer(model, args(tmp_path, max_steps=5), train_dataset=image_data(),
                                   callbacks=[callback])  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 1  # stopped after the first step that broke the freeze
    assert callback.report is not None and not callback.report.ok
    assert callback.report.by_kind("frozen_buffer_changed")


def test_peft_lora_model_passes(tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    callback = FreezeGuard(expect_updates=True)
    trainer = transformers.Trainer(model, args(tmp_path, max_steps=4), train_dataset=token_data(),
                                   callbacks=[callback])  # fmt: skip
    trainer.train()
    assert callback.guard is not None and callback.guard.steps == 4
    assert callback.reports and all(r.ok for r in callback.reports)
    last = callback.reports[-1]
    assert last.frozen_params > 0 and last.status("frozen_param_changed") == "held"
    assert last.status("trainable_not_updated") == "held"  # lora_A moved by step 2; not a bug on step 1


class AddTokens(transformers.TrainerCallback):  # type: ignore[misc]
    """Adds tokens after the first step: resize_token_embeddings swaps the embedding's data in place."""

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.global_step == 1:
            model.resize_token_embeddings(130, mean_resizing=False)


def test_causal_lm_resize_token_embeddings_is_caught(tmp_path: Path) -> None:
    model = tiny_llama()
    model.requires_grad_(False)
    model.lm_head.requires_grad_(True)
    trainer = transformers.Trainer(
        model, args(tmp_path, optim="sgd"), train_dataset=token_data(),
        callbacks=[AddTokens(), FreezeGuard(frozen=["model.*"])],
    )  # fmt: skip
    with pytest.raises(FreezeCheckError, match="by optimizer step 2") as info:
        trainer.train()
    (v,) = info.value.report.by_kind("tensor_replaced")
    assert v.name == "model.embed_tokens.weight" and v.step == 2 and v.shape == "[128, 32] -> [130, 32]"
    assert "resize_token_embeddings" in v.cause


class DecayEverything(torch.optim.Optimizer):
    """A hand-written optimizer with decoupled weight decay applied to every param it holds,
    grad or not (the decay comes before the ``grad is None`` test)."""

    def __init__(self, params: Any, lr: float = 1e-2, weight_decay: float = 0.1) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.mul_(1 - group["lr"] * group["weight_decay"])
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def test_custom_optimizer_over_all_params_with_weight_decay_is_caught(tmp_path: Path) -> None:
    model = tiny_llama()
    model.model.requires_grad_(False)
    opt = DecayEverything(model.parameters())  # all params, frozen ones included
    trainer = transformers.Trainer(model, args(tmp_path), train_dataset=token_data(), optimizers=(opt, None),
                                   callbacks=[FreezeGuard()])  # fmt: skip
    with pytest.raises(FreezeCheckError) as info:
        trainer.train()
    changed = info.value.report.by_kind("frozen_param_changed")
    assert {v.name for v in changed} >= {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"}
    assert all("weight_decay=0.1" in v.cause and "decays every param it holds" in v.cause for v in changed)
    groups = [g for g in info.value.report.groups if g.kind == "frozen_param_changed"]
    assert len(groups) == 1  # one cause, said once
