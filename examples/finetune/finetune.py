"""The code under test: a resnet18 fine-tune that freezes the backbone and trains a new head.

Each function does one thing the tests in this folder check; the comments name the pitfall it
avoids. Images are 16x16 so the suite runs in seconds on a CPU; nothing here depends on that.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

import torchscope

NUM_CLASSES = 5


def build_model(num_classes: int = NUM_CLASSES) -> nn.Module:
    """resnet18 (random weights here; ``weights="DEFAULT"`` in real life) with a new, zero-initialised head."""
    model = torchvision.models.resnet18(weights=None)
    torchscope.replace_head(model, num_classes)
    # Zero head: the loss at init is exactly log(num_classes) (Karpathy's "verify loss @ init").
    nn.init.zeros_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)
    torchscope.freeze_backbone(model)
    return model


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """AdamW over the trainable params only, built AFTER the head was replaced and the backbone frozen.

    Pitfalls avoided: an optimizer built before ``replace_head`` misses the new head; one built over
    ``model.parameters()`` applies weight decay to frozen weights whenever they hold a zero grad.
    """
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.05)


def set_train_mode(model: nn.Module) -> None:
    """model.train(), but the frozen BatchNorm layers stay in eval mode (no running-stat drift)."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and not any(p.requires_grad for p in module.parameters()):
            module.eval()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """One optimisation step; returns the loss."""
    x, y = batch
    set_train_mode(model)
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities; eval mode first, so BatchNorm uses its running stats and dropout is off."""
    model.eval()
    return model(x).softmax(-1)


def inception_loss(outputs: torchvision.models.InceptionOutputs, y: torch.Tensor) -> torch.Tensor:
    """inception_v3 in train mode returns (logits, aux_logits): train the aux head too, or freeze it."""
    ce = nn.functional.cross_entropy
    return ce(outputs.logits, y) + 0.4 * ce(outputs.aux_logits, y)
