"""``torch.compile``d models: our own hooks and passes are never traced by Dynamo.

A collector that runs the forward itself runs the eager module inside the compiled wrapper
(:func:`uncompiled`): the same modules, parameters and hooks, and no compile. Hooks on a model
that the user runs compiled (``record``) are excluded from tracing (:func:`eager`), so Dynamo
warns about none of torchscope's functions. Neither imports Dynamo (a second or more): a model can
only be compiled once the user's code has imported it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from torch import nn

F = TypeVar("F", bound=Callable[..., object])


def uncompiled(model: nn.Module) -> nn.Module:
    """The eager module that ``torch.compile(module)`` wraps (``model`` itself if not compiled).

    >>> lin = nn.Linear(2, 2)
    >>> uncompiled(lin) is lin
    True
    """
    while type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
        model = model._orig_mod  # type: ignore[assignment]
    return model


def eager(fn: F) -> F:
    """``fn`` excluded from Dynamo's tracing once Dynamo is loaded (a compiled model may call it)."""
    if "torch._dynamo" not in sys.modules:
        return fn
    import torch

    return torch.compiler.disable(fn)  # type: ignore[return-value]
