"""Whole-zoo sweeps over torchvision: every model builds on meta and its tree is right."""

from __future__ import annotations

import pytest
import torchvision
from torch import nn

from torchscope import load_model, tree
from torchscope._freeze import find_head
from torchscope._loader import build_kwargs_for_published

pytestmark = pytest.mark.slow

CLASSIFICATION = sorted(torchvision.models.list_models(module=torchvision.models))
ALL = sorted(torchvision.models.list_models())
# Detection builders swap FrozenBatchNorm2d (buffers) for BatchNorm2d (params) when built without
# weights, so their parameter count differs from the published one by design.
DETECTION = set(torchvision.models.list_models(module=torchvision.models.detection))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_total_params_equal_published(name: str) -> None:
    model = load_model(name, device="meta")
    published = torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
    t = tree(model)
    assert t.total_params == published, (name, build_kwargs_for_published(name))
    assert t.devices == ("meta",)
    assert t.modules[0].params == published
    assert isinstance(model.get_submodule(find_head(model)), nn.Linear | nn.Conv2d)


@pytest.mark.parametrize("name", [n for n in ALL if n not in CLASSIFICATION])
def test_every_other_model_builds_on_meta(name: str) -> None:
    model = load_model(name, device="meta")
    t = tree(model)
    assert t.devices == ("meta",)
    if name not in DETECTION:
        assert t.total_params == torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
