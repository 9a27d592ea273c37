"""One classification of what a forward returned, shared by every command that trains on it
(``grads``, ``check-freeze``, ``report``): tensors to build a loss from, or unusable input."""

from __future__ import annotations

from typing import Any

import torch

from torchscope._inputs import flatten_outputs
from torchscope.errors import SpecError

__all__ = ["describe_output", "output_tensors"]


def describe_output(out: Any) -> str:
    """What a forward returned, in a few words: ``None``, ``a str ('abc')``, ``a float (0.5)``.

    >>> describe_output(None), describe_output("abc"), describe_output([1.5])
    ('None', "a str ('abc')", 'a list of 1 item(s) with no tensor')
    """
    if out is None:
        return "None"
    if isinstance(out, str | bytes):
        shown = repr(out[:40]) + ("..." if len(out) > 40 else "")
        return f"a {type(out).__name__} ({shown})"
    if isinstance(out, int | float | complex | bool):
        return f"a {type(out).__name__} ({out!r})"
    if isinstance(out, list | tuple | dict | set):
        return f"a {type(out).__name__} of {len(out)} item(s) with no tensor"
    return f"a {type(out).__name__} with no tensor"


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor of a forward's output, in order; an output a loss cannot be built from is bad input.

    No tensor at all (``None``, a ``str``, a Python ``float``) or only integer/bool tensors (argmax
    labels) raise :class:`~torchscope.errors.SpecError`: no training step can run on it, whichever
    command asks.

    >>> [tuple(t.shape) for t in output_tensors({"logits": torch.zeros(2, 3)})]
    [(2, 3)]
    >>> output_tensors(None)
    Traceback (most recent call last):
    ...
    torchscope.errors.SpecError: the model's forward returned None, so there is no loss to train on; return a Tensor (or a tuple, list or dict of tensors)
    """
    tensors = [t for _, t in flatten_outputs(out)]
    if not tensors:
        raise SpecError(
            f"the model's forward returned {describe_output(out)}, so there is no loss to train on; "
            "return a Tensor (or a tuple, list or dict of tensors)"
        )
    if not any(t.is_floating_point() or t.is_complex() for t in tensors):
        dtypes = ", ".join(sorted({str(t.dtype).removeprefix("torch.") for t in tensors}))
        raise SpecError(
            f"the model's forward returned only {dtypes} tensors, which carry no gradient, so there is no "
            "loss to train on; return the float scores (logits), not the labels"
        )
    return tensors
