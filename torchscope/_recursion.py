"""Deeply nested models: room for the Python frames torchscope adds, and one line when there is none.

Python counts every call against ``sys.getrecursionlimit()``. A plain forward pass through nested
modules costs about 4 a nesting level (``_wrapped_call_impl``, ``_call_impl``, ``forward`` and the
C call between them); once any hook is registered, torch's ``_call_impl`` runs its ``inner``
closure: 5; ``copy.deepcopy`` of a model costs about 6. Measured at the default limit of 1000 with
nested ``nn.Sequential``: plain forward passes up to 248 levels deep, hooked ones up to 198, deepcopy
up to 164. So a model that plain torch runs could fail under our hooks, with a RecursionError from our
own frames.

:func:`headroom` raises the limit for the length of a torchscope call by what torchscope adds
(then puts it back), so every model that plain torch can run at the current limit runs under
torchscope too. A model too deep for plain torch at that limit is refused up front by
:func:`check_depth`: one line naming the depth and the fix, not a RecursionError traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from torch import nn

from torchscope.errors import SpecError

PLAIN_PER_LEVEL = 4  # a plain forward pass, per nesting level
WALK_PER_LEVEL = 2  # walking the modules (named_modules, .to(), state_dict) costs 1; with room to spare
OURS_PER_LEVEL = 6  # the most torchscope adds to that: hooks (5) or a deepcopy of the model (6)
MARGIN = 300  # our frames that do not grow with depth: the CLI, the dispatch mode, the FLOP formulas

P = ParamSpec("P")
R = TypeVar("R")


def nesting_depth(model: nn.Module) -> int:
    """How many modules deep ``model`` nests (0: no children), without recursing (any depth works).

    >>> nesting_depth(nn.Linear(2, 2)), nesting_depth(nn.Sequential(nn.Sequential(nn.Linear(2, 2))))
    (0, 2)
    """
    deepest = 0
    seen = {id(model)}
    todo = [(model, 0)]
    while todo:
        module, depth = todo.pop()
        deepest = max(deepest, depth)
        for child in module._modules.values():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                todo.append((child, depth + 1))
    return deepest


def _frames() -> int:
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1  # type: ignore[assignment]
    return n


def check_depth(model: nn.Module, depth: int | None = None, *, per_level: int = PLAIN_PER_LEVEL) -> int:
    """``model``'s nesting depth; a :class:`SpecError` when plain torch would already exceed the
    recursion limit with it: in a forward pass (``per_level=PLAIN_PER_LEVEL``) or walking its modules
    (``WALK_PER_LEVEL``).

    >>> check_depth(nn.Sequential(nn.Linear(2, 2)))
    1
    """
    depth = nesting_depth(model) if depth is None else depth
    limit = sys.getrecursionlimit()
    needed = _frames() + per_level * depth
    if needed > limit:
        what = "a forward pass through it" if per_level >= PLAIN_PER_LEVEL else "walking its modules"
        fix = ((needed + OURS_PER_LEVEL * depth + MARGIN) // 1000 + 1) * 1000
        raise SpecError(
            f"the model is nested {depth} modules deep: {what} needs up to {needed} Python frames, over the "
            f"recursion limit of {limit}; nest less (nn.Sequential(*layers), not one module inside another) "
            f"or raise the limit before building it: sys.setrecursionlimit({fix}) (for the CLI, at the top "
            "of the model's file)"
        )
    return depth


@contextmanager
def headroom(model: nn.Module) -> Iterator[None]:
    """Run the block with room for torchscope's frames on top of a plain forward pass through ``model``.

    Refuses a model too deep for plain torch (:func:`check_depth`); otherwise raises the recursion
    limit if torchscope's hooks or copies could exceed it, and restores it on exit.

    >>> import sys
    >>> before = sys.getrecursionlimit()
    >>> with headroom(nn.Linear(2, 2)):
    ...     pass
    >>> sys.getrecursionlimit() == before
    True
    """
    depth = check_depth(model)
    limit = sys.getrecursionlimit()
    wanted = _frames() + OURS_PER_LEVEL * depth + MARGIN
    if wanted <= limit:
        yield
        return
    sys.setrecursionlimit(wanted)
    try:
        yield
    finally:
        if sys.getrecursionlimit() == wanted:  # the user's code did not set its own meanwhile
            sys.setrecursionlimit(limit)


def with_headroom(func: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """Decorate a function of ``(model, ...)`` to run under :func:`headroom` (a non-module model is
    left to the function's own check)."""

    @functools.wraps(func)
    def wrapper(model: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if not isinstance(model, nn.Module):
            return func(model, *args, **kwargs)
        with headroom(model):
            return func(model, *args, **kwargs)

    return wrapper


__all__ = [
    "MARGIN",
    "OURS_PER_LEVEL",
    "PLAIN_PER_LEVEL",
    "WALK_PER_LEVEL",
    "check_depth",
    "headroom",
    "nesting_depth",
    "with_headroom",
]
