"""The install lines of README.md and docs/ say what each install really brings: the packages a
comment names are the ones pyproject.toml installs there (a comment that lists two or more names
lists them all), so a dependency that moves to an extra, or a new one in an extra, fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINE = re.compile(r"pip install -e (?:'\.\[(?P<extra>[\w,-]+)\]'|\.(?=\s))\s.*?#\s*(?P<comment>.+)$")


def dist_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()


def project() -> tuple[set[str], dict[str, set[str]]]:
    import tomllib  # Python >= 3.11, as tests/test_docs_api.py

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {dist_name(r) for r in meta["dependencies"]}
    extras = {name: {dist_name(r) for r in reqs} for name, reqs in meta["optional-dependencies"].items()}
    return core, extras


def named(comment: str, known: set[str]) -> set[str]:
    """The dependency names a comment mentions, as whole words."""
    return {n for n in known if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", comment, re.IGNORECASE)}


def install_lines() -> list[tuple[str, str | None, str]]:
    found = []
    for page in PAGES:
        if page.exists():
            for line in page.read_text().splitlines():
                m = LINE.search(line)
                if m:
                    found.append((f"{page.relative_to(ROOT)}: {line.strip()}", m["extra"], m["comment"]))
    return found


def test_the_pages_have_install_lines_to_check() -> None:
    lines = install_lines()
    assert any(extra is None for _, extra, _ in lines)  # the plain install is documented
    assert any(extra == "hf" for _, extra, _ in lines)


@pytest.mark.parametrize(("where", "extra", "comment"), install_lines(), ids=lambda v: str(v)[:60])
def test_an_install_comment_names_what_that_install_brings(where: str, extra: str | None, comment: str) -> None:
    core, extras = project()
    known = core | set().union(*extras.values())
    said = named(comment, known)
    if extra is None:
        assert said == core, f"{where}: the plain install brings {sorted(core)}"
        return
    brings = set().union(*(extras[e] for e in extra.split(",")))
    assert said <= brings | core, f"{where}: [{extra}] does not bring {sorted(said - brings - core)}"
    if len(said - core) >= 2:
        assert said - core == brings, f"{where}: [{extra}] brings {sorted(brings)}"
