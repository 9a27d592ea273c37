"""User pages hold user material; benchmark figures live in benchmarks/RESULTS.md, one copy."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# a markdown table row with a timing or a speed ratio: "| plain | 2305 ms |", "| 0.72x (0.74x) |"
TIMING_ROW = re.compile(r"^\s*\|.*(?:\b\d+(?:\.\d+)?\s?(?:ms|s|s/GB|GB/s|img/s|tokens/s)\b|\b\d+\.\d+x\b).*\|\s*$")


def timing_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if TIMING_ROW.match(line)]


def test_the_rule_sees_a_timing_table() -> None:
    page = "| run | median |\n| --- | --- |\n| plain | 2305 ms |\n| ratio | 1.033x |\n| `h100` | 81559 |\n"
    assert timing_rows(page) == ["| plain | 2305 ms |", "| ratio | 1.033x |"]


def test_user_pages_hold_no_timing_tables() -> None:
    found = {
        page.name: rows
        for page in sorted((ROOT / "docs").glob("*.md"))
        if (rows := timing_rows(page.read_text(encoding="utf-8")))
    }
    assert not found, f"benchmark figures belong in benchmarks/RESULTS.md (linked), not in {found}"


def test_the_results_page_is_one_copy_and_names_every_script() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert '--8<-- "benchmarks/RESULTS.md"' in page
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", results, flags=re.M)[1:]
    missing = [
        script.name
        for script in sorted((ROOT / "benchmarks").glob("*.py"))
        if not any(section.split("\n\n")[1].find(f"`benchmarks/{script.name}`") >= 0 for section in sections)
    ]
    assert not missing, f"benchmarks/RESULTS.md has no section saying what these measure: {missing}"
