"""The docs site: it builds with --strict, and the CLI reference matches the Typer app."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def gen_cli_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    expected = gen_cli_docs().render()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli.md is out of date; run: python scripts/gen_cli_docs.py"


def test_cli_reference_lists_every_command_and_option() -> None:
    import typer

    from torchscope.cli import app

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {group.name: group})
    assert commands
    for name, command in commands.items():
        assert f"## `torchscope {name}`" in text
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert f"`{opt}`" in text, f"{name} {opt}"


def test_nav_pages_exist() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with mkdocs: pip install -e '.[docs]'")

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def walk(items: list) -> list[str]:
        out: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out += walk(value) if isinstance(value, list) else [value]
        return out

    pages = walk(config["nav"])
    assert {"index.md", "cli.md", "api.md", "verify-finetune.md", "testing.md", "bench.md"} <= set(pages)
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page
    # every page is reachable from the nav
    assert {p.name for p in (ROOT / "docs").glob("*.md")} == set(pages)


@pytest.mark.slow  # spawns a process
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed: pip install -e '.[docs]'")
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "verify-finetune" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "watch" in api and "CheckFreeze" in api


def _python_blocks(page: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    fence = "`" * 3
    return [block.split("\n", 1)[1] for block in text.split(fence + "python")[1:] for block in [block.split(fence)[0]]]


@pytest.mark.parametrize("index", range(len(_python_blocks("hooks.md"))))
def test_hooks_page_examples_run(index: int) -> None:
    # each example on docs/hooks.md runs as it is, on its own, and its asserts hold
    exec(compile(_python_blocks("hooks.md")[index], f"docs/hooks.md example {index + 1}", "exec"), {})
