"""Renderers: turn collected data (frozen dataclasses) into Rich renderables, plain text and HTML.

Renderers only read data and never import torch, so they stay cheap to import and can render any
saved ``to_dict()`` output again without the model.

Importing this package installs the display functions every result uses for ``repr()`` and its
notebook HTML (:mod:`torchscope._display`, the one documented boundary between the core and the
renderers); :mod:`torchscope.render.display` itself is imported only when a result is shown.
"""

from __future__ import annotations

from typing import Any

from torchscope import _display


def _text(result: Any) -> str:
    from torchscope.render.display import text

    return text(result)


def _html(result: Any) -> str:
    from torchscope.render.display import html

    return html(result)


def _echo(result: Any) -> None:
    from torchscope.render.display import echo

    echo(result)


_display.install(text=_text, html=_html, echo=_echo)
