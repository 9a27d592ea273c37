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


@pytest.mark.parametrize("name", [n for n in torchscope.__all__ if n != "__version__"])
def test_public_objects_say_where_users_import_them_from(name: str) -> None:
    value = getattr(torchscope, name)
    where = value.__module__
    # torchscope itself, unless a public module (torchscope.errors) defines it: then that module
    defined_in = torchscope._EXPORTS[name]
    public = not any(part.startswith("_") for part in defined_in.split("."))
    assert where == (defined_in if public else "torchscope"), f"torchscope.{name}.__module__ is {where!r}"
    assert getattr(sys.modules[where], name) is value
    if where == "torchscope" and isinstance(value, type):
        assert repr(value) == f"<class 'torchscope.{name}'>"


def test_a_reexported_class_still_pickles() -> None:
    import pickle

    from torch import nn

    data = torchscope.tree(nn.Linear(2, 3))
    assert type(data).__module__ == "torchscope"
    assert pickle.loads(pickle.dumps(data)) == data


def test_reexported_examples_still_run_where_they_are_defined() -> None:
    import doctest

    import torchscope._tree

    assert torchscope.tree.__module__ == "torchscope"
    names = {t.name for t in doctest.DocTestFinder().find(torchscope._tree) if t.examples}
    assert "torchscope._tree.__test__.tree" in names


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


@pytest.mark.slow  # spawns a process
def test_submodules_load_on_first_use_without_pytest_or_hypothesis() -> None:
    code = (
        "import sys, torch, torchscope\n"
        "torchscope.testing.assert_output_shape(torch.nn.Linear(2, 3), torch.randn(4, 2), (4, 3))\n"
        "print(torchscope.testing.assert_frozen.__module__, torchscope.errors.SpecError.__name__)\n"
        "print(','.join(sorted(m for m in ('pytest', '_pytest', 'hypothesis') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["torchscope.testing SpecError", ""]
    assert {"testing", "strategies", "errors"} <= set(dir(torchscope))


# hypothesis missing: a None entry in sys.modules makes `import hypothesis` fail as if not installed
NO_HYPOTHESIS = "import sys\nsys.modules['hypothesis'] = None\n"


@pytest.mark.slow  # spawns a process
def test_without_hypothesis_only_strategies_needs_it_and_says_which_extra() -> None:
    code = NO_HYPOTHESIS + (
        "import torchscope, torchscope.pytest_plugin, torchscope.testing\n"
        "try:\n    torchscope.strategies\n"
        "except ModuleNotFoundError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "torchscope.strategies needs hypothesis: pip install 'torchscope[hypothesis]'"
