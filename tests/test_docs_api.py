"""The docs around the code: every example is listed with the command that runs it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_example_file_is_listed_in_examples_readme() -> None:
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    files = sorted(p.relative_to(ROOT / "examples").as_posix() for p in (ROOT / "examples").rglob("*.py"))
    assert files, "no example found"
    missing = [f for f in files if f"`{f}`" not in readme]
    assert not missing, f"examples/README.md does not list {missing}"
    for folder in {f.split("/")[0] for f in files}:
        assert f"pytest examples/{folder}" in readme, folder


def test_package_metadata_says_typed_and_ships_py_typed() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "Typing :: Typed" in project["project"]["classifiers"]
    assert "License :: OSI Approved :: MIT License" in project["project"]["classifiers"]
    assert project["project"]["license"] == {"text": "MIT"}
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["torchscope"]
    assert (ROOT / "torchscope" / "py.typed").is_file()


def test_documented_signatures_match_the_code() -> None:
    """A heading ``## `name(params)` `` in docs/ states the whole signature of ``torchscope.name``."""
    import inspect
    import re

    import torchscope

    found = 0
    for page in sorted((ROOT / "docs").glob("*.md")):
        for match in re.finditer(r"^#+ `([a-z_]+)\((.*)\)`\s*$", page.read_text(encoding="utf-8"), re.M):
            name, documented = match.groups()
            found += 1
            parts: list[str] = []
            for param in inspect.signature(getattr(torchscope, name)).parameters.values():
                if param.kind is param.KEYWORD_ONLY and "*" not in parts:
                    parts.append("*")
                default = "" if param.default is param.empty else "=" + repr(param.default).replace("'", '"')
                parts.append(param.name + default)
            shown = ", ".join(parts)
            assert documented == shown, f"{page.name}: {name}({documented}) but the code has ({shown})"
    assert found >= 2
