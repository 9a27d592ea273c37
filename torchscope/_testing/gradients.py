"""Gradient checks: ``assert_grads_finite`` (after backward) and ``assert_no_unused_params``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from torchscope._state import preserved
from torchscope._testing.messages import finish, format_table, message, shape_of
from torchscope._testing.tensors import named_tensors
from torchscope.errors import SpecError, TorchscopeError

__all__ = ["assert_grads_finite", "assert_no_unused_params"]


def assert_grads_finite(model: nn.Module) -> None:
    """Fail if any parameter's ``.grad`` holds NaN or Inf (run it after ``loss.backward()``).

    Args:
        model: The model, after ``loss.backward()``.

    Raises:
        AssertionError: A ``.grad`` holds NaN or Inf.

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> m(torch.randn(3, 2)).sum().backward()
    >>> assert_grads_finite(m)
    """
    __tracebackhide__ = True
    named, _ = named_tensors(model)
    with_grad = [(n, n.tensor.grad) for n in named if n.is_param and n.tensor.grad is not None]
    counts: list[list[int]] = []
    if with_grad:
        with torch.no_grad():
            stats = torch.stack(
                [torch.stack([g.isnan().sum(), g.isinf().sum()]).to("cpu") for _, g in with_grad]  # type: ignore[union-attr]
            )
        counts = stats.tolist()
    found: list[dict[str, Any]] = []
    for (item, g), (nan, inf) in zip(with_grad, counts, strict=True):
        if nan or inf:
            found.append({"name": item.name, "shape": shape_of(g), "nan": int(nan), "inf": int(inf),
                          "numel": g.numel()})  # type: ignore[union-attr]
    report = {"ok": not found, "checked": [i.name for i, _ in with_grad], "violations": found}
    text = None
    if found:
        rows = [[v["name"], v["shape"], f"{v['nan']}/{v['numel']}", f"{v['inf']}/{v['numel']}"] for v in found]
        text = message(
            "assert_grads_finite",
            f"{len(found)} of {len(with_grad)} gradients are not finite",
            format_table(["name", "shape", "NaN", "Inf"], rows),
            ["lower the learning rate, clip gradients, or guard log/division/sqrt in the loss and forward"],
        )
    finish("assert_grads_finite", text, report)


def _loss_of(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out if out.dim() == 0 else out.float().sum()
    raise SpecError(
        f"loss_fn_or_step returned {type(out).__name__}; return the loss tensor (or None after calling backward)"
    )


def assert_no_unused_params(model: nn.Module, loss_fn_or_step: Callable[[], Any]) -> None:
    """Fail if a trainable parameter gets no gradient from ``loss_fn_or_step``.

    ``loss_fn_or_step()`` returns a loss (backpropagated here) or calls ``backward`` itself and
    returns ``None``. Parameter values, grads, buffers and modes are restored afterwards.

    Args:
        model: The model.
        loss_fn_or_step: Returns a loss, or calls ``backward`` itself and returns ``None``.

    Raises:
        AssertionError: A trainable parameter got no gradient.
        TorchscopeError: The model has no trainable parameter.

    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> assert_no_unused_params(m, lambda: m(torch.randn(3, 2)).sum())
    """
    __tracebackhide__ = True
    named, alias = named_tensors(model)
    params = [n for n in named if n.is_param and n.tensor.requires_grad]
    if not params:
        raise TorchscopeError("the model has no trainable parameter; unfreeze some before this check")
    with preserved(model, params=True):
        for n in params:
            n.tensor.grad = None
        out = loss_fn_or_step()
        if out is not None:
            loss = _loss_of(out)
            # A loss that needs no grad reaches no trainable param: all of them are unused.
            if loss.requires_grad:
                loss.backward()
        unused = [n for n in params if n.tensor.grad is None]
    names_of: dict[str, list[str]] = {}
    for a, c in alias.items():
        names_of.setdefault(c, []).append(a)
    found: list[dict[str, Any]] = [{"name": n.name, "shape": shape_of(n.tensor), "module": type(model.get_submodule(n.module_name)).__name__}
             for n in unused]
    report = {"ok": not found, "checked": [n.name for n in params], "violations": found}
    text = None
    if found:
        rows = [[v["name"], v["shape"], v["module"]] for v in found]
        text = message(
            "assert_no_unused_params",
            f"{len(found)} of {len(params)} trainable parameters got no gradient "
            "(never called in forward, or their output is unused/detached)",
            format_table(["name", "shape", "module"], rows),
            [
                "use the output in the loss (e.g. inception's aux logits: loss + 0.4 * aux_loss), "
                "or freeze/remove the module (under DDP: find_unused_parameters=True)"
            ],
        )
    finish("assert_no_unused_params", text, report)
