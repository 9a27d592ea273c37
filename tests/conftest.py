from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from typer.testing import CliRunner, Result
from zoo import ZOO, build

CliRun = Callable[..., Result]


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own empty torchscope cache (``torchscope tree`` caches results), so the suite
    never writes to ~/.cache and no test sees another's entries. Not under ``tmp_path``, which tests
    may list."""
    path = tmp_path_factory.mktemp("torchscope-cache")
    monkeypatch.setenv("TORCHSCOPE_CACHE_DIR", str(path))
    return path


@pytest.fixture(params=sorted(ZOO))
def zoo_model(request: pytest.FixtureRequest):
    """Every zoo model with its example input."""
    return build(request.param)


@pytest.fixture
def cli() -> CliRun:
    """Run ``torchscope ARGS...`` in-process (Typer's runner; stdout and stderr kept apart)."""
    from torchscope.cli import app

    runner = CliRunner()

    def run(*args: str, **kwargs: object) -> Result:
        return runner.invoke(app, [str(a) for a in args], **kwargs)  # type: ignore[arg-type]

    return run
