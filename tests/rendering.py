"""Render a Rich renderable to plain text, the way render tests compare exact strings."""

from __future__ import annotations

import io

from rich.console import Console


def text(renderable: object) -> str:
    """Plain text of ``renderable`` at width 100, no colour, trailing spaces stripped."""
    console = Console(width=100, color_system=None, record=True, file=io.StringIO())
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())
