"""Griffe extension for the API reference: render docstring ``>>>`` examples as code.

torchscope's docstrings carry runnable doctest examples without an "Examples:" header. Markdown
would read ``>>>`` as nested block quotes and ``['a', 'b']`` in the expected output as link
references, so this wraps each run of example lines in a ``pycon`` code fence before rendering.
Loaded by mkdocs.yml (mkdocstrings, python handler, ``extensions``).
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    r"""Wrap every block that starts with ``>>>`` (up to the next blank line) in a pycon fence.

    >>> fence_doctests("Sum.\n\n" + ">" * 3 + " 1 + 1\n2\n\nMore.").splitlines()
    ['Sum.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'More.']
    """
    out: list[str] = []
    in_block = False
    in_fence = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if not in_fence and not in_block and stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            in_block = True
        elif in_block and not stripped:
            out.append(f"{indent}```")
            in_block = False
        out.append(line)
    if in_block:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest examples of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
