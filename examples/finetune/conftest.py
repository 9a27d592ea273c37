"""Fixtures of the fine-tune example: no shared test zoo, just what a user's own suite would have."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

from finetune import NUM_CLASSES, build_model, make_optimizer


@pytest.fixture
def model(torchscope_seed: int) -> nn.Module:
    return build_model()


@pytest.fixture
def optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return make_optimizer(model)


@pytest.fixture
def batch(torchscope_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(4, 3, 16, 16), torch.arange(4) % NUM_CLASSES
