"""The code under test: a LoRA fine-tune of a (tiny) BERT sequence classifier with peft.

Each function does one thing the tests in this folder check; the comments name the pitfall it
avoids. The model is built from a 2-layer config so the suite runs in seconds on a CPU (in real
life: ``AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=3)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peft
import torch
import transformers
from torch import nn

NUM_LABELS = 3
TINY_BERT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 128,
    "max_position_embeddings": 64,
}
# BERT's attention projections. Not Llama's q_proj/v_proj (pitfall: a recipe's names match nothing).
TARGETS = ["query", "value"]


def base_model() -> nn.Module:
    config = transformers.AutoConfig.for_model("bert", num_labels=NUM_LABELS, **TINY_BERT)
    return transformers.AutoModelForSequenceClassification.from_config(config)


def lora_config(**overrides: Any) -> peft.LoraConfig:
    """task_type="SEQ_CLS" puts the new classifier in modules_to_save (pitfall: without it the head
    is frozen with the base and keeps its random init)."""
    settings: dict[str, Any] = {
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.1,
        "target_modules": TARGETS,
        "task_type": "SEQ_CLS",
    }
    return peft.LoraConfig(**{**settings, **overrides})


def build_model(**overrides: Any) -> nn.Module:
    return peft.get_peft_model(base_model(), lora_config(**overrides))


def enable_checkpointing(model: nn.Module) -> None:
    """Gradient checkpointing for a frozen-embedding model: reentrant checkpoints need an input that
    requires grad, which ``enable_input_require_grads()`` provides (pitfall: without it no adapter
    inside a checkpointed block gets a grad)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model.enable_input_require_grads()


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """AdamW over the trainable params only: the adapters and the saved head."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> float:
    model.train()
    optimizer.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return float(loss)


@torch.no_grad()
def predict(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits in eval mode (pitfall: a model left in train mode after training evaluates with its
    lora_dropout and dropout on, so every call gives other scores)."""
    model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return model(**inputs).logits


def merge_for_release(model: nn.Module) -> nn.Module:
    """The merged model to ship, merged in float32 (pitfall: merging a bfloat16 base rounds
    W + scaling * B @ A to bfloat16, so the merged model no longer computes what was evaluated)."""
    return model.float().merge_and_unload()


def save_adapter(model: nn.Module, base_dir: Path, adapter_dir: Path) -> None:
    """The base model directory and the adapter directory beside it, as a real run leaves them."""
    model.get_base_model().save_pretrained(base_dir)
    model.save_pretrained(adapter_dir)
    config = model.peft_config["default"]
    config.base_model_name_or_path = str(base_dir)
    config.save_pretrained(adapter_dir)
