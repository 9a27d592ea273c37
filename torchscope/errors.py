"""The one exception family of torchscope.

Every error a user can cause derives from :class:`TorchscopeError`. Its message is one line that
names the offending value and the fix; the CLI prints it to stderr and exits 2.
"""

from __future__ import annotations


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
