from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from zoo import ZOO, build


@pytest.fixture(params=sorted(ZOO))
def zoo_model(request: pytest.FixtureRequest):
    """Every zoo model with its example input."""
    return build(request.param)
