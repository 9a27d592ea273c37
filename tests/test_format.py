"""The one byte formatter and the one shape formatter: their boundaries, how Rich wraps their output,
and that no other module of the package writes bytes or shapes its own way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from rich.table import Table

from torchscope._format import format_bytes, format_count, format_shape, format_si, si_scale

PACKAGE = Path(__file__).resolve().parents[1] / "torchscope"


def written_outside_format(own: re.Pattern[str]) -> list[str]:
    """Every match of ``own`` in the package outside ``_format.py``, as ``file: text``."""
    return [
        f"{path.relative_to(PACKAGE)}: {match.group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_format.py"
        for match in own.finditer(path.read_text(encoding="utf-8"))
    ]


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
    assert written_outside_format(own) == []


@pytest.mark.parametrize(
    ("n", "exact", "short", "fixed"),
    [
        (0, "0", "0", "0"),
        (999, "999", "999", "999"),
        (1000, "1,000", "1.0 K", "1.00 K"),
        (1_234, "1,234", "1.2 K", "1.23 K"),
        (99_949, "99,949", "99.9 K", "99.95 K"),
        (633_470_440, "633,470,440", "633 M", "633.47 M"),
        (11_689_512, "11,689,512", "11.7 M", "11.69 M"),  # resnet18's params
        (4_089_184_256, "4,089,184,256", "4.1 G", "4.09 G"),  # resnet50's mult-adds
        (3 * 10**12, "3,000,000,000,000", "3.0 T", "3.00 T"),
        (-1500, "-1,500", "-1.5 K", "-1.50 K"),
    ],
)
def test_counts_are_exact_or_short_with_an_si_prefix(n: int, exact: str, short: str, fixed: str) -> None:
    assert format_count(n) == exact
    assert format_si(n, decimals=None) == short
    assert format_si(n) == fixed


def test_parameter_counts_say_b_for_a_billion_and_flops_carry_their_unit() -> None:
    assert format_si(7_241_732_096, decimals=None, giga="B") == "7.2 B"
    assert format_si(4.1e9, "FLOP") == "4.10 GFLOP" and format_si(12.0, "FLOP") == "12 FLOP"


@pytest.mark.parametrize(
    ("n", "kwargs", "scaled"),
    [
        (4_089_184_256, {}, ("G", 4.089184256)),
        (999, {}, ("", 999.0)),
        (1_814_083_944, {"lowest": "M", "highest": "T"}, ("G", 1.814083944)),  # torchinfo's mult-adds
        (500_000, {"lowest": "M", "highest": "T"}, ("M", 0.5)),  # torchinfo never goes below M
        (3 * 10**15, {"lowest": "M", "highest": "T"}, ("T", 3000.0)),  # nor above T
    ],
)
def test_the_si_prefix_is_picked_in_one_place(n: int, kwargs: dict[str, str], scaled: tuple[str, float]) -> None:
    assert si_scale(n, **kwargs) == scaled


def test_every_renderer_writes_counts_through_the_one_formatter() -> None:
    from torchscope.render import _charts, bench, summary, tree

    for n in (999, 1_234, 11_689_512, 633_470_440, 4_089_184_256):
        assert tree.human_count(n) == format_si(n, decimals=None, giga="B")
        assert summary.fmt_macs(n) == format_si(n)
        assert bench.fmt_flops(n) == format_si(n, "FLOP")
        assert _charts.format_number(n) == (format_si(n, decimals=None) if n >= 1000 else str(n))


def test_no_other_module_formats_counts_with_an_si_prefix() -> None:
    own = re.compile(
        r"\(\s*\"[A-Za-z]+\"\s*,\s*(?:1e\d+|10 ?\*\* ?\d+)\s*\)"  # a ("M", 1e6) prefix table of its own
        r"|\(\s*(?:1e\d+|10 ?\*\* ?\d+)\s*,\s*\"[A-Za-z]+\"\s*\)"  # or (1e6, "M")
        r"|return\s+\"[A-Z]\"\s*,\s*\w+\s*/\s*(?:1e\d+|10 ?\*\* ?\d+)"  # return "G", n / 1e9: a prefix chain
        r"|def \w*(?:format_si|format_count|si_prefix|si_scale)\b"  # a second count formatter
    )
    assert written_outside_format(own) == []
