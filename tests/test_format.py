"""The one byte formatter and the one shape formatter: their boundaries, how Rich wraps their output,
and that no other module of the package writes bytes or shapes its own way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from rich.table import Table

from torchscope._format import format_bytes, format_shape

PACKAGE = Path(__file__).resolve().parents[1] / "torchscope"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (2**20 - 52, "1023.9 KiB"),
        (2**20 - 51, "1.0 MiB"),  # 1023.95 KiB would round to "1024.0 KiB"
        (46_758_048, "44.6 MiB"),  # resnet18's fp32 params: 46.8 MB in decimal units
        (16 * 2**30, "16.0 GiB"),
        (3 * 2**40, "3.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_bytes_are_binary_with_one_decimal(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_shapes_are_written_as_torch_writes_them() -> None:
    assert format_shape(torch.Size([1, 3, 224, 224])) == "[1, 3, 224, 224]"
    assert format_shape(torch.zeros(()).shape) == "[]"
    assert format_shape((None, 10)) == "[*, 10]"
    assert format_shape(iter([7])) == "[7]"


@pytest.mark.parametrize("width", [4, 6, 9, 12])
def test_a_narrow_column_wraps_a_shape_between_dimensions(width: int) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(width=width, overflow="fold")
    table.add_row(format_shape((1, 3, 224, 224)))
    console = Console(width=40, color_system=None, record=True)
    console.print(table)
    lines = [line.strip() for line in console.export_text().splitlines() if line.strip()]
    assert len(lines) > 1  # it did wrap
    # every piece is whole dimensions: no "22" / "4" split of 224
    assert re.findall(r"\d+", " ".join(lines)) == ["1", "3", "224", "224"]


def test_no_other_module_formats_bytes_or_shapes() -> None:
    own = re.compile(
        r"def \w*(?:human_bytes|fmt_bytes|format_bytes|_shape_text)\b"  # a formatter of its own
        r"|/ 2 ?\*\* ?20|/ 1e6:"  # a hand-made MiB or MB
        r"|\"[x×]\"\.join\("  # 1x3x224x224 or 1×3×224×224
        r"|\bstr\((?:list|tuple)\([\w.\[\]]*shape\)\)"  # [1, 3] or (1, 3) by hand
    )
    found = [
        f"{path.relative_to(PACKAGE)}: {match.group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_format.py"
        for match in own.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []
