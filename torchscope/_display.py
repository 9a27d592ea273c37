"""How a result reaches its renderer: the one boundary between the core and ``torchscope.render``.

The core never imports ``torchscope.render`` (renderers import the result types, so the other way
round would be a circle). Instead ``torchscope.render`` installs its display functions here when it
is imported, and a result asks this module for its text or HTML only when it is shown
(``repr()``, a notebook cell). At that moment, if nothing is installed yet, :func:`_renderer`
imports ``torchscope.render`` by name: a display-time import, never an import-time one, and the
only one of its kind (``scripts/check_imports.py`` allows it here and nowhere else). The renderers
dispatch on the result's schema name (``torchscope.summary``), so they take only the result's data.

No torch, nothing else from torchscope: this module sits below both the results and the renderers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["echo", "html", "install", "text"]

Show = Callable[[Any], str]
_installed: dict[str, Show] = {}

#: The package that installs the display functions; imported by name at display time only.
RENDER_PACKAGE = "torchscope.render"


def install(*, text: Show, html: Show, echo: Callable[[Any], None]) -> None:
    """Called by ``torchscope.render`` on import: the functions that show any result."""
    _installed["text"] = text
    _installed["html"] = html
    _installed["echo"] = echo  # type: ignore[assignment]


def _renderer(kind: str) -> Show:
    show = _installed.get(kind)
    if show is None:
        importlib.import_module(RENDER_PACKAGE)  # the documented display-time boundary
        show = _installed[kind]
    return show


def text(result: Any) -> str:
    """The plain-text table of ``result`` (its ``repr`` and ``str``)."""
    return _renderer("text")(result)


def echo(result: Any) -> None:
    """Print ``result``'s table to the terminal (colours where it has them): ``verbose`` printing."""
    _renderer("echo")(result)


def html(result: Any) -> str:
    """An HTML fragment of ``result`` for a notebook: escaped, inline CSS and SVG, no script."""
    return _renderer("html")(result)
