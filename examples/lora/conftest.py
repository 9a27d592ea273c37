"""Fixtures of the LoRA example: no shared test zoo, just what a user's own suite would have.

transformers and peft are optional: without them this folder is skipped (test_lora.py says why),
and lora.py, which imports them, is not collected.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

if any(importlib.util.find_spec(m) is None for m in ("transformers", "peft")):
    collect_ignore = ["lora.py"]


@pytest.fixture
def batch(torchscope_seed: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(0, 128, (4, 12))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.arange(4) % 3}


@pytest.fixture
def model(torchscope_seed: int) -> torch.nn.Module:
    from lora import build_model

    return build_model()
