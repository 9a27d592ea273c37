"""scripts/check_imports.py: no circle of modules or of packages, imports go downhill, no private name across rooms."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_imports", REPO / "scripts" / "check_imports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_imports"] = module  # dataclasses look the module up while the class is made
    spec.loader.exec_module(module)
    return module


check_imports = _script()


def make_tree(root: Path, files: dict[str, str]) -> Path:
    """A fake repository: ``torchscope/__init__.py`` plus ``files`` (path -> source)."""
    (root / "torchscope").mkdir(parents=True)
    (root / "torchscope" / "__init__.py").write_text("")
    for rel, text in files.items():
        path = root / "torchscope" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = check_imports.main(["--root", str(root)])
    return code, capsys.readouterr().out


def test_the_package_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(REPO, capsys)
    assert code == 0, out
    assert out.startswith("import check: ") and "no circles (modules or packages), no core -> CLI import" in out
    assert "no core -> render import (display boundary: torchscope._display -> torchscope.render" in out
    assert out.rstrip().endswith("no torch under render, no private name across rooms")


def test_the_core_importing_a_renderer_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(
        tmp_path,
        {
            "render/__init__.py": "",
            "render/table.py": "from torchscope._data import Data\n",
            "_data.py": "class Data:\n    def __str__(self):\n        from torchscope.render.table import show\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 1
    assert "core module imports the renderers: torchscope._data -> torchscope.render.table  (torchscope/_data.py:3)" in out


def test_only_the_display_boundary_may_import_the_renderers_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "render/__init__.py": "import torchscope._display\n",
        "_display.py": "import importlib\nRENDER = 'torchscope.render'\ndef show():\n    importlib.import_module(RENDER)\n",
    }
    code, out = run(make_tree(tmp_path / "ok", files), capsys)
    assert code == 0, out
    assert "display boundary: torchscope._display -> torchscope.render (torchscope/_display.py:4)" in out
    sneaky = {**files, "_other.py": "import importlib\ndef f():\n    importlib.import_module('torchscope.render')\n"}
    code, out = run(make_tree(tmp_path / "bad", sneaky), capsys)
    assert code == 1
    assert "core module imports the renderers by name: torchscope._other -> torchscope.render" in out


def test_a_renderer_reaching_torch_through_the_core_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(
        tmp_path,
        {
            "render/__init__.py": "",
            "render/view.py": "from torchscope._kinds import KINDS\n",
            "_kinds.py": "from torchscope._heavy import x\nKINDS = ()\n",
            "_heavy.py": "import torch\nx = 1\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 1
    assert (
        "renderer imports torch: torchscope.render.view -> torchscope._kinds -> torchscope._heavy -> torch  "
        "(torchscope/_heavy.py:1)"
    ) in out


def test_a_circle_hidden_in_a_function_is_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(
        tmp_path,
        {
            "_a.py": "from torchscope._b import helper\n",
            "_b.py": "def helper():\n    from torchscope._c import thing\n    return thing\n",
            "_c.py": "import os\n\n\ndef thing():\n    import torchscope._a\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 1
    assert "import circle of 3 modules (torchscope._a, torchscope._b, torchscope._c)" in out
    assert "torchscope._b -> torchscope._c  (torchscope/_b.py:2)" in out
    assert "torchscope._c -> torchscope._a  (torchscope/_c.py:5)" in out
    assert "import check failed: 1 problem(s)" in out


def test_type_checking_imports_are_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(
        tmp_path,
        {
            "_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from torchscope._b import B\n",
            "_b.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    pass\nfrom torchscope._a import *\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 0, out
    assert "3 modules (3 core, 0 CLI), 1 import edges" in out


def test_the_else_of_type_checking_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(
        tmp_path,
        {
            "_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nelse:\n    import torchscope._b\n",
            "_b.py": "import torchscope._a\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 1 and "import circle of 2 modules (torchscope._a, torchscope._b)" in out


def test_core_importing_the_cli_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(
        tmp_path,
        {
            "cli/__init__.py": "import os\n",
            "cli/_common.py": "import os\n",
            "__main__.py": "from torchscope.cli import main\n",
            "_core.py": "def work():\n    from torchscope.cli._common import parse\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 1
    assert out.splitlines() == [
        "core module imports the CLI: torchscope._core -> torchscope.cli._common  (torchscope/_core.py:2)",
        "import check failed: 1 problem(s)",
    ]


def test_relative_imports_and_package_inits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # inside a package, importing a sibling does not re-run the package's __init__: no circle
    root = make_tree(
        tmp_path,
        {
            "_pkg/__init__.py": "from ._pkg_a import a\nfrom . import _pkg_b\n",
            "_pkg/_pkg_a.py": "from torchscope._pkg._pkg_b import b\n",
            "_pkg/_pkg_b.py": "b = 1\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 0, out
    # but a module outside that imports pkg.sub runs pkg/__init__, which imports it back: a circle
    (root / "torchscope" / "_outer.py").write_text("import torchscope._pkg._pkg_b\n")
    (root / "torchscope" / "_pkg" / "_pkg_b.py").write_text("b = 1\n")
    (root / "torchscope" / "_pkg" / "__init__.py").write_text("from .._outer import x\n")
    code, out = run(root, capsys)
    assert code == 1
    assert "torchscope._outer -> torchscope._pkg  (torchscope/_outer.py:1)" in out
    assert "torchscope._pkg -> torchscope._outer  (torchscope/_pkg/__init__.py:1)" in out


def test_a_root_without_the_package_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_imports.main(["--root", str(tmp_path)]) == 2
    assert "has no torchscope/__init__.py" in capsys.readouterr().err


def test_a_circle_between_packages_without_a_module_circle_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # _check.step -> _audit, _audit -> _check.report: no module circle, but the packages close one
    # (the shape the step check and the optimizer audit had: each used a part of the other)
    root = make_tree(
        tmp_path,
        {
            "_check/__init__.py": '"""Re-exports nothing."""\n',
            "_check/report.py": "class Violation: ...\n",
            "_check/step.py": "from torchscope._audit import audit\n",
            "_audit.py": "from torchscope._check.report import Violation\n\n\ndef audit(): ...\n",
        },
    )
    code, out = run(root, capsys)
    assert code == 1
    assert "import circle of 2 modules" not in out
    assert "import circle of 2 packages (torchscope._audit, torchscope._check):" in out
    assert "torchscope._audit -> torchscope._check  (torchscope/_audit.py:1)" in out
    assert (
        "torchscope._check -> torchscope._audit  (torchscope._check.step -> torchscope._audit, "
        "torchscope/_check/step.py:1)"
    ) in out
    assert "import check failed: 1 problem(s)" in out
    # what both share moved below both: the circle is gone
    (root / "torchscope" / "_parts.py").write_text("class Violation: ...\n")
    (root / "torchscope" / "_check" / "report.py").write_text("from torchscope._parts import Violation\n")
    (root / "torchscope" / "_audit.py").write_text("from torchscope._parts import Violation\n\n\ndef audit(): ...\n")
    code, out = run(root, capsys)
    assert code == 0, out
    assert "6 modules (6 core, 0 CLI), 3 import edges, 3 packages, no circles (modules or packages)" in out


def test_a_module_circle_is_not_reported_again_as_a_package_circle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(
        tmp_path,
        {"_a/__init__.py": "", "_a/x.py": "import torchscope._b\n", "_b.py": "import torchscope._a.x\n"},
    )
    code, out = run(root, capsys)
    assert code == 1
    assert "import circle of 2 modules (torchscope._a.x, torchscope._b)" in out
    assert "packages" not in out
    assert "import check failed: 1 problem(s)" in out


def test_a_private_name_imported_across_rooms_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(
        tmp_path,
        {
            "_treedata.py": "def _jsonable(v):\n    return v\n\n\ndef jsonable(v):\n    return _jsonable(v)\n",
            "_tree.py": "from torchscope._treedata import _jsonable, jsonable\n",
            "_pkg/__init__.py": "from torchscope._pkg import _impl\n",  # a private module is a room: fine
            "_pkg/_impl.py": "from ._impl import __doc__\nx = 1\n",  # a dunder is no private name
        },
    )
    code, out = run(root, capsys)
    assert code == 1
    assert out.splitlines() == [
        "private name imported across rooms: torchscope._tree imports torchscope._treedata._jsonable  "
        "(torchscope/_tree.py:1); make it a public name of torchscope._treedata",
        "import check failed: 1 problem(s)",
    ]
