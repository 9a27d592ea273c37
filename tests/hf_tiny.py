"""Tiny Hugging Face models for tests: real architectures, a few thousand params, built in milliseconds.

``TINY[model_type]`` are ``--config`` overrides that shrink that type's default config; ``save_tiny``
writes a model directory as ``save_pretrained`` does (config.json + model.safetensors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")

TINY: dict[str, dict[str, Any]] = {
    "llama": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 128,
        "max_position_embeddings": 64,
    },
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 128, "n_positions": 64},
    "bert": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 128,
        "max_position_embeddings": 64,
    },
}


def tiny_config(model_type: str, **extra: Any) -> Any:
    return transformers.AutoConfig.for_model(model_type, **{**TINY[model_type], **extra})


def save_tiny(
    path: Path, model_type: str = "llama", auto: str = "AutoModelForCausalLM", seed: int = 0, **extra: Any
) -> Any:
    """A tiny model of ``model_type`` saved to ``path`` (config.json + model.safetensors); returns it."""
    import torch

    torch.manual_seed(seed)
    model = getattr(transformers, auto).from_config(tiny_config(model_type, **extra))
    model.save_pretrained(path)
    return model
