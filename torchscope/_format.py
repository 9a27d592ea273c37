"""The one formatter per unit for everything torchscope prints: byte sizes and tensor shapes.

Renderers, messages and the CLI all call these two, so a size or a shape reads the same in every
command. No torch and no Rich import: ``torch.Size`` is a tuple, and any iterable of ints works.

- **Bytes are binary (IEC):** ``KiB``/``MiB``/``GiB``/``TiB`` are powers of 1024, one decimal
  (``44.6 MiB``), because that is what the numbers are compared with: ``torch.cuda`` memory stats,
  CUDA's out-of-memory message (``Tried to allocate 2.00 GiB``) and ``nvidia-smi`` (MiB) all count in
  powers of 1024, so a decimal ``MB`` would be 5-7 % off the figure next to it.
- **Shapes are written as torch and torchinfo write them:** ``[1, 3, 224, 224]``, ``[]`` for a 0-d
  tensor. The only spaces are after the commas, so a table that must wrap a shape (Rich breaks lines
  at whitespace) breaks it between dimensions, never inside a number.
"""

from __future__ import annotations

from collections.abc import Iterable

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


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


__all__ = ["format_bytes", "format_mb", "format_shape"]
