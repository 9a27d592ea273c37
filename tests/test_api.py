"""The public API: one sorted ``__all__``, every name resolves, and importing stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import torchscope


def test_all_is_sorted_and_unique() -> None:
    assert torchscope.__all__ == sorted(set(torchscope.__all__))


@pytest.mark.parametrize("name", torchscope.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    value = getattr(torchscope, name)
    assert value is not None
    if name != "__version__":
        module = torchscope._EXPORTS[name]
        assert getattr(sys.modules[module], name) is value


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"module 'torchscope' has no attribute 'nope'"):
        torchscope.nope  # noqa: B018


@pytest.mark.slow  # spawns a process
@pytest.mark.parametrize("module", ["torchscope", "torchscope.cli"])
def test_import_does_not_import_torch(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'timm', 'hypothesis', 'tensorboard') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} imported {out.stdout.strip()}"
