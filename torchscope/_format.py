"""The one formatter per unit for everything torchscope prints: byte sizes, counts and tensor shapes.

Renderers, messages and the CLI all call these, so a size, a count or a shape reads the same in
every command. No torch and no Rich import: ``torch.Size`` is a tuple, and any iterable of ints works.

- **Bytes are binary (IEC):** ``KiB``/``MiB``/``GiB``/``TiB`` are powers of 1024, one decimal
  (``44.6 MiB``), because that is what the numbers are compared with: ``torch.cuda`` memory stats,
  CUDA's out-of-memory message (``Tried to allocate 2.00 GiB``) and ``nvidia-smi`` (MiB) all count in
  powers of 1024, so a decimal ``MB`` would be 5-7 % off the figure next to it.
- **Counts are exact or short:** :func:`format_count` writes every digit (``11,689,512``, as
  torchinfo's totals do); :func:`format_si` writes the short form with an SI prefix for the per-row
  columns and the charts (``11.7 M``, ``4.09 GFLOP``), with the prefix :func:`si_scale` picks (which
  also gives torchinfo's ``Total mult-adds (G)`` its unit). Parameter counts say ``B`` for 10**9, as
  model names do (a 7B model); everything else says ``G``.
- **Shapes are written as torch and torchinfo write them:** ``[1, 3, 224, 224]``, ``[]`` for a 0-d
  tensor. The only spaces are after the commas, so a table that must wrap a shape (Rich breaks lines
  at whitespace) breaks it between dimensions, never inside a number.
"""

from __future__ import annotations

from collections.abc import Iterable

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
_PREFIXES = (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3))


def format_bytes(n: int) -> str:
    """A byte count in binary units: bytes below 1 KiB, then one decimal of the largest unit.

    >>> format_bytes(512), format_bytes(1536), format_bytes(46_758_048), format_bytes(3 * 2**30)
    ('512 B', '1.5 KiB', '44.6 MiB', '3.0 GiB')
    >>> format_bytes(0), format_bytes(-2048), format_bytes(2**20 - 1), format_bytes(2**60)
    ('0 B', '-2.0 KiB', '1.0 MiB', '1024.0 PiB')
    """
    sign = "-" if n < 0 else ""
    size = float(abs(n))
    if size < 1024:
        return f"{sign}{int(size)} B"
    size /= 1024
    unit = 0
    # round first: 1023.96 KiB would print as "1024.0 KiB", which is 1.0 MiB
    while round(size, 1) >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{sign}{size:.1f} {_UNITS[unit]}"


def format_count(n: int) -> str:
    """A count with every digit, thousands separated by commas.

    >>> format_count(11_689_512), format_count(0), format_count(-1234)
    ('11,689,512', '0', '-1,234')
    """
    return f"{n:,}"


def format_si(n: float, unit: str = "", *, decimals: int | None = 2, giga: str = "G") -> str:
    """A count with an SI prefix: ``decimals`` after the point, or, with ``decimals=None``, the short
    form (one decimal below 100 of the prefix, none from 100). Below 1000 there is no prefix and no
    decimal. ``giga="B"`` for parameter counts.

    >>> format_si(4_089_184_256), format_si(4.1e9, "FLOP"), format_si(12), format_si(12.0, "FLOP")
    ('4.09 G', '4.10 GFLOP', '12', '12 FLOP')
    >>> format_si(11_689_512, decimals=None), format_si(633_470_440, decimals=None), format_si(999, decimals=None)
    ('11.7 M', '633 M', '999')
    >>> format_si(7_241_732_096, decimals=None, giga="B"), format_si(-1500, decimals=1)
    ('7.2 B', '-1.5 K')
    """
    prefix, value = si_scale(n)
    if prefix:
        places = decimals if decimals is not None else (0 if abs(value) >= 100 else 1)
        return f"{value:.{places}f} {giga if prefix == 'G' else prefix}{unit}"
    return f"{n:.0f} {unit}" if unit else f"{n:.0f}"


def si_scale(n: float, *, lowest: str = "", highest: str = "P") -> tuple[str, float]:
    """The SI prefix for ``n`` and ``n`` in it: the largest prefix up to ``highest`` that ``|n|``
    reaches, and never one below ``lowest`` (``""``: no prefix below 1000).

    >>> si_scale(4_089_184_256), si_scale(999), si_scale(500_000, lowest="M"), si_scale(3e15, highest="T")
    (('G', 4.089184256), ('', 999.0), ('M', 0.5), ('T', 3000.0))
    """
    names = [name for name, _ in _PREFIXES]
    allowed = _PREFIXES[names.index(highest) : (names.index(lowest) + 1 if lowest else None)]
    for prefix, scale in allowed:
        if abs(n) >= scale:
            return prefix, n / scale
    if lowest:
        prefix, scale = allowed[-1]
        return prefix, n / scale
    return "", float(n)


def format_shape(shape: Iterable[int | None]) -> str:
    """A tensor shape as torch writes it; ``None`` (any size, in a spec) is ``*``.

    >>> format_shape((1, 3, 224, 224)), format_shape(()), format_shape([None, 10])
    ('[1, 3, 224, 224]', '[]', '[*, 10]')
    """
    return "[" + ", ".join("*" if d is None else str(d) for d in shape) + "]"


def format_mb(n: int | float) -> str:
    """Bytes as torchinfo writes its ``(MB)`` totals: 10**6 bytes, two decimals.

    >>> format_mb(46_758_048)
    '46.76'
    """
    return f"{n / 1e6:0.2f}"


__all__ = ["format_bytes", "format_count", "format_mb", "format_shape", "format_si", "si_scale"]
