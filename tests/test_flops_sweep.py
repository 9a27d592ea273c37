"""Every torchvision classification model: summary's MACs within 2% of torchvision's published figure.

torchvision publishes ``_ops`` (GMACs, its "GFLOPS" column) with each model's default weights; we run
each model at those weights' crop size on the meta device (no memory, no compute) and compare.
"""

from __future__ import annotations

import pytest
import torchvision
from torchvision.models import get_model_weights, list_models

import torchscope
from torchscope._loader import default_input_size

NAMES = list_models(module=torchvision.models)


def test_sweep_covers_every_classification_model() -> None:
    assert len(NAMES) == 80


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_mult_adds_match_published(name: str) -> None:
    model = torchscope.load_model(name, device="meta")
    published = get_model_weights(name).DEFAULT.meta["_ops"] * 1e9
    s = torchscope.summary(model, input_size=default_input_size(name), compare_modes=False)
    data = s.to_dict()
    assert data["total_flops"] == 2 * data["total_mult_adds"]
    assert data["total_mult_adds"] == pytest.approx(published, rel=0.02), name
