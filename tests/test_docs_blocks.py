"""Every code block of README.md and docs/*.md runs and shows what it really prints (tests/docblocks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from docblocks import PAGES, Page, matches, normalise, parse, run_page

# pages whose blocks build or train real models on the CPU (tens of seconds each on a shared machine)
SLOW = {p for p in PAGES if p != "docs/api.md"}


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW else p for p in PAGES])
def test_page_blocks_run_and_match(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = run_page(page, tmp_path)
    assert not result.failures, f"{len(result.failures)} block(s) of {page} drifted:\n\n" + "\n\n".join(result.failures)


def test_every_block_is_run_or_says_why_not() -> None:
    unmarked = [f"{b.where} ```{b.lang}" for page in PAGES for b in parse(page) if b.kind == "unmarked"]
    skips = [b.where for page in PAGES for b in parse(page) if b.kind == "skip" and not b.reason]
    assert not unmarked, "blocks that neither run nor say why: " + ", ".join(unmarked)
    assert not skips, "skip markers without a reason: " + ", ".join(skips)


def test_the_matcher_fails_on_a_wrong_line_and_takes_ellipses() -> None:
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["x ... z"], ["x y z"])
    assert not matches(["a", "b"], ["a", "c"])
    assert not matches(["a"], ["a", "extra"])
    assert normalise("  \nline   \n\n", "") == ["line"]


def test_a_drifted_console_block_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text("```console\n$ torchscope models --grep resnet18\nnot what it prints\n```\n\n```bash\ntorchscope tree resnet18 --no-such-flag\n```\n")
    monkeypatch.setattr("docblocks.ROOT", tmp_path)
    result = Page("page.md", tmp_path)
    for block in parse("page.md"):
        result.run(block)
    assert len(result.failures) == 2
    assert "output differs" in result.failures[0] and "-not what it prints" in result.failures[0]
    assert "No such option" in result.failures[1]
