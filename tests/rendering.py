"""Render a Rich renderable to plain text, and read a tree table's rows, the way tests compare them."""

from __future__ import annotations

import io

from rich.console import Console


def text(renderable: object, width: int = 100) -> str:
    """Plain text of ``renderable`` at ``width`` columns, no colour, trailing spaces stripped."""
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def row_names(out: str) -> list[str]:
    """The Name column of each row of a rendered tree table, without the tree guides."""
    names = []
    for line in out.splitlines()[2:]:
        if line.startswith(("Trainable params", "warning")):
            break
        names.append(line.lstrip("│├└─ ").split()[0])
    return names
