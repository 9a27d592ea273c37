"""The one exception family of torchscope.

Every error a user can cause derives from :class:`TorchscopeError`. Its message is one line that
names the offending value and the fix; the CLI prints it to stderr and exits 2.
"""

from __future__ import annotations

from typing import Any


class TorchscopeError(Exception):
    """Base class of every error torchscope raises on bad input.

    >>> raise TorchscopeError("depth=-1 must be >= 0")
    Traceback (most recent call last):
    torchscope.errors.TorchscopeError: depth=-1 must be >= 0
    """


class SpecError(TorchscopeError):
    """A model spec, file or argument that cannot be resolved."""


class PatternError(TorchscopeError):
    """A name pattern that matched nothing, or is malformed."""


class ForwardError(TorchscopeError):
    """A forward pass failed; the message names the module and the shapes it got."""


class FreezeCheckError(AssertionError):
    """A freeze invariant was broken in a real run: raised by :func:`torchscope.guard` and by every
    framework adapter (Lightning, HF ``Trainer``), always this one class.

    It is an ``AssertionError`` (a test that trains under a guard fails, not errors), and no
    :class:`TorchscopeError`: the input was fine, the training loop broke the freeze. ``report``
    holds the :class:`~torchscope.StepCheck`; the message is its table: every changed tensor at
    once, with its shape, the step, and each cause with its fix said once.

    >>> err = FreezeCheckError("1 frozen tensor changed", report=None)
    >>> isinstance(err, AssertionError), err.report
    (True, None)
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report
