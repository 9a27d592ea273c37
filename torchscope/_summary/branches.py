"""Whether a model's code may branch on ``self.training``, so that the other mode may return
another structure (inception_v3's aux logits): only then does the summary run the other mode.

Reading a class's source (``inspect.getsource`` re-parses its whole file) cost more than the rest of
a first summary. A function can only branch on ``training`` if its compiled code names it, so each
function's code object (its nested functions and comprehensions too) is looked at first, and the
source is read only for the functions that name ``training``. The decision is the one the class's
source gives; a class whose functions have no source to read is assumed to branch.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator
from types import CodeType, FunctionType

from torch import nn

# `if self.training`, `x if training else y`, `training and ...`: code whose result may change with the
# mode; a flag passed on (`F.dropout(x, training=self.training)`) returns the same structure either way
BRANCH = re.compile(r"\bif\b[^\n:]*\btraining\b|\btraining\b\s*(and|or)\b|\bnot\s+[\w.]*training\b")
_BRANCHES: dict[type, bool] = {}
_SKIPPED = ("torch.nn.", "torch.jit", "builtins")  # torch's own modules: the same structure in both modes


def names_training(code: CodeType) -> bool:
    """Whether ``code`` (or code nested in it) uses a name or attribute called ``training``."""
    if "training" in code.co_names or "training" in code.co_varnames or "training" in code.co_freevars:
        return True
    return any(names_training(c) for c in code.co_consts if isinstance(c, CodeType))


def _functions(klass: type) -> Iterator[FunctionType]:
    # the functions a class defines itself: methods, static and class methods, property accessors
    for value in vars(klass).values():
        candidates = (value.fget, value.fset) if isinstance(value, property) else (getattr(value, "__func__", value),)
        for f in candidates:
            while isinstance(f, FunctionType):
                yield f
                f = getattr(f, "__wrapped__", None)  # a decorated method: the code it wraps


def class_branches(cls: type) -> bool:
    """Whether ``cls`` (or a base class outside torch) has code that branches on ``training``."""
    known = _BRANCHES.get(cls)
    if known is None:
        known = any(_own_code_branches(k) for k in cls.__mro__ if k is not object and not k.__module__.startswith(_SKIPPED))
        _BRANCHES[cls] = known
    return known


def _own_code_branches(klass: type) -> bool:
    for f in _functions(klass):
        if not names_training(f.__code__):
            continue
        try:
            source = inspect.getsource(f)
        except (OSError, TypeError):
            return True  # no source to read: assume it may
        if BRANCH.search(source):
            return True
    return False


def branches_on_training(model: nn.Module, modules: Iterable[nn.Module] | None = None) -> bool:
    """Whether any module's code may branch on its ``training`` flag."""
    return any(class_branches(type(m)) for m in (model.modules() if modules is None else modules))


__all__ = ["BRANCH", "branches_on_training", "class_branches", "names_training"]
