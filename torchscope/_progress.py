"""How far long work is, as plain data: a collector calls ``progress(phase, done, total)``.

Collectors that take long (``bench``, ``collect_report``, ``estimate_memory(fit=...)``'s search)
take an optional callback and call it with a phase name and two integers; they never own a console
or draw anything. ``total`` is 0 while the number of steps is not known. With no callback (the
default, every library call) nothing is shown anywhere: only the CLI passes one, drawn by
:class:`torchscope.render.progress.ProgressBar` on stderr. No torch, no Rich.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn", "tell"]

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``; ``total`` 0 when the number of steps is not known in advance."""


def tell(progress: ProgressFn | None, phase: str, done: int, total: int) -> None:
    """Call ``progress`` if there is one: a collector's one line per step of its work.

    >>> seen = []
    >>> tell(lambda *a: seen.append(a), "tree", 1, 6); tell(None, "tree", 2, 6); seen
    [('tree', 1, 6)]
    """
    if progress is not None:
        progress(phase, done, total)
