"""Habits of the test suite itself, checked so that they hold for tests written later too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# what starts another interpreter, a browser or torchrun
SPAWNS = re.compile(r"\bsubprocess\.|sys\.executable|\btorchrun\b|\bplaywright\b|\bchromium\b|multiprocessing|mp\.spawn")


def _marks(decorators: list[ast.expr]) -> set[str]:
    names = set()
    for d in decorators:
        target = d.func if isinstance(d, ast.Call) else d
        names.add(ast.unparse(target))
    return names


def _module_is_slow(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(ast.unparse(t) == "pytestmark" for t in node.targets):
            return "pytest.mark.slow" in ast.unparse(node.value)
    return False


def spawning_tests_not_marked_slow() -> list[str]:
    """``file::test`` of every test whose body spawns a process but carries no ``slow`` mark."""
    missing = []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if _module_is_slow(tree):
            continue
        helpers = {
            n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("test_")
            and SPAWNS.search(ast.unparse(n))
        }  # fmt: skip
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            body = ast.unparse(node)
            calls_helper = any(re.search(rf"\b{h}\(", body) for h in helpers)
            if (SPAWNS.search(body) or calls_helper) and "pytest.mark.slow" not in _marks(node.decorator_list):
                missing.append(f"{path.name}::{node.name}")
    return missing


def test_every_test_that_spawns_a_process_is_marked_slow() -> None:
    assert spawning_tests_not_marked_slow() == []


def test_no_count_is_pinned_to_one_torchvision_version() -> None:
    pinned = re.compile(r"len\((NAMES|names|list_models\(\)|torchvision\.models\.list_models\(\))\)\s*==\s*\d+")
    offenders = [
        f"{p.name}:{i}"
        for p in sorted(TESTS.glob("test_*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pinned.search(line)
    ]
    assert offenders == []
