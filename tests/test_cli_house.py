"""The CLI's house rules that hold for every command: exits by name, a printable version."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

import torchscope
from torchscope.cli._exit import ExitCode

CliRun = Callable[..., Result]
PACKAGE = Path(torchscope.__file__).parent


def _literal_exits(source: str) -> list[int]:
    """Lines of ``source`` that exit with a number literal (``typer.Exit(1)``, ``sys.exit(2)``,
    ``Exit(code=3)``) instead of an :class:`ExitCode` name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in ("Exit", "exit", "_exit"):
            continue
        values = [*node.args, *(k.value for k in node.keywords if k.arg in ("code", "status"))]
        if any(isinstance(v, ast.Constant) and isinstance(v.value, int) for v in values):
            lines.append(node.lineno)
    return lines


def test_the_literal_finder_finds_literal_exits() -> None:
    found = _literal_exits("import typer, sys\nraise typer.Exit(1)\nsys.exit(code=2)\nraise typer.Exit(ExitCode.OK)\n")
    assert found == [2, 3]


def test_no_exit_with_a_number_literal_anywhere_in_the_package() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _literal_exits(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_version_prints_the_package_version(cli: CliRun) -> None:
    result = cli("--version")
    assert result.exit_code == ExitCode.OK
    assert result.stdout == f"torchscope {torchscope.__version__}\n"


def test_version_is_in_the_help(cli: CliRun) -> None:
    result = cli("--help")
    assert result.exit_code == ExitCode.OK
    assert "--version" in result.stdout
