"""Render a Rich renderable to plain text, the way render tests compare exact strings."""

from __future__ import annotations

import io

from rich.console import Console


def text(renderable: object, width: int = 100) -> str:
    """Plain text of ``renderable`` at ``width`` columns, no colour, trailing spaces stripped."""
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())
