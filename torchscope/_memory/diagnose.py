"""Why a traced step failed: a limit of fake tensors, or the model's own code (or its input).

Fake and meta tensors carry shapes, not values, so some code cannot run on them: an op with no fake
(meta) kernel, or code that needs a value (``.item()``, ``if tensor:``, a boolean mask, ``nonzero``).
Only those failures get the fake-kernel advice. Everything else (a shape mismatch that a meta kernel
checks exactly as the real one does, a ``ValueError`` raised by the model, integer inputs into a
float layer) would fail on a real device too: it is the model's or the input's, and is reported as
``summary`` reports a failed forward pass, naming the module that was running and the shapes it got.
"""

from __future__ import annotations

import os
import traceback

from torchscope._summary.calls import CallTracker
from torchscope._usercode import describe, user_location
from torchscope.errors import ForwardError

VALUE = "its result depends on tensor values, which fake tensors do not have"
KERNEL = "it has no fake (meta) kernel"

_BY_TYPE = {
    "DataDependentOutputException": VALUE,
    "DynamicOutputShapeException": VALUE,
    "GuardOnDataDependentSymNode": VALUE,
    "UnsupportedOperatorException": KERNEL,
    "UnsupportedFakeTensorException": KERNEL,
}
# what torch says when an op or a value is missing on the meta device (no exception type of its own)
_KERNEL_TEXT = ("no fake impl", "meta kernel", "'meta' backend", "fake kernel")
_VALUE_TEXT = (
    "cannot be called on meta tensors",
    "data-dependent",
    "data-independent",
    "cannot copy out of meta tensor",
    "meta tensor without",
    "meta device type tensor",
)


class ModelError(ForwardError):
    """The step failed in the model's own code or on its input, not because its tensors were fake.

    ``in_forward``: it failed inside a module's forward pass (where the input's shape is the cause
    to rule out first).
    """

    def __init__(self, message: str, *, in_forward: bool = False) -> None:
        super().__init__(message)
        self.in_forward = in_forward


def phase_of(exc: BaseException, default: str) -> str:
    """``backward`` or ``optimizer step`` when ``exc`` was raised under autograd's backward or an
    optimizer's ``step`` (read from its traceback), else ``default``."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = frame.filename.replace(os.sep, "/")
        if "/torch/autograd/" in path and frame.name in ("backward", "_engine_run_backward"):
            return "backward"
        if "/torch/optim/" in path and frame.name in ("step", "wrapper"):
            return "optimizer step"
    return default


def fake_limit(exc: BaseException) -> str | None:
    """Why ``exc`` is a limit of fake tensors (``VALUE`` or ``KERNEL``), or None when it is not one.

    >>> fake_limit(RuntimeError("Tensor.item() cannot be called on meta tensors")) == VALUE
    True
    >>> fake_limit(RuntimeError("a and b must have same reduction dim")) is None
    True
    """
    for cls in type(exc).__mro__:
        if cls.__name__ in _BY_TYPE:
            return _BY_TYPE[cls.__name__]
    if not isinstance(exc, NotImplementedError | RuntimeError | TypeError):
        return None
    text = str(exc).lower()
    if any(s in text for s in _KERNEL_TEXT):
        return KERNEL
    if any(s in text for s in _VALUE_TEXT):
        return VALUE
    return None


def fake_limit_error(exc: BaseException, op: str | None, module: str, reason: str) -> ForwardError:
    """One line naming the op and the module that cannot run under fake tensors, and the way out."""
    where = f"{op} in module {module!r}" if op else f"module {module!r}"
    fix = (
        "Register a fake kernel (torch.library.register_fake) for it"
        if reason == KERNEL
        else "Avoid the value-dependent code there (.item(), if on a tensor, boolean masks, nonzero)"
    )
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return ForwardError(
        f"cannot predict memory: {where} cannot run under fake tensors ({reason}; "
        f"{type(exc).__name__}: {first}); no number is given. {fix}"
    )


def model_error(exc: BaseException, calls: CallTracker, phase: str, module: str, op: str | None) -> ModelError:
    """The model's (or the input's) failure: in a forward pass as ``summary`` words it, else the phase."""
    phase = phase_of(exc, phase)
    if calls.stack and phase == "forward":
        return ModelError(f"cannot predict memory: {calls.failure_message(exc)}", in_forward=True)
    at = f" in module {module!r}" if module and module != "(outside)" else ""
    at += f" at {op}" if op else ""
    return ModelError(f"cannot predict memory: the {phase} failed{at}: {describe(exc)}{user_location(exc)}")
