"""A model spec longer than the console is never cut from a panel's title: it moves inside, whole."""

from __future__ import annotations

import re
from pathlib import Path

ZOO = Path(__file__).parent / "zoo.py"


def test_report_from_a_long_path_names_the_whole_spec_in_the_terminal_and_the_html_copy(tmp_path: Path, cli) -> None:
    deep = tmp_path.joinpath(*["a-folder-with-a-rather-long-name"] * 4)
    deep.mkdir(parents=True)
    model = deep / "zoo_copy.py"
    model.write_text(ZOO.read_text())
    spec = f"{model}:SmallCNN"
    html = tmp_path / "out.html"
    result = cli(
        "report", spec, "--input-size", "4,3,8,8", "--no-check", "--no-color", "--console-html", str(html),
        env={"COLUMNS": "80"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    # inside the panel the spec may fold over lines: joined again, it is whole
    assert spec in "".join(line.strip(" │") for line in result.stdout.splitlines())
    text = re.sub(r"<[^>]+>", "", html.read_text()).replace("&#160;", " ")
    assert "…" not in text and spec in "".join(line.strip(" │") for line in text.splitlines())
