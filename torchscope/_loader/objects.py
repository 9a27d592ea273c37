"""Models named as Python objects: ``timm:NAME``, ``package.module:attr`` and ``path/to/file.py:attr``."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from torchscope._loader.common import SPEC_FORMS, builder_failed, kwargs_text
from torchscope._loader.meta import build_on_meta
from torchscope._usercode import describe, user_location
from torchscope.errors import SpecError

# Python files imported for a spec, by file stem: a whole-model checkpoint pickles its class as
# ``stem.Class``, and unpickling it (--unsafe-load) finds the module under that name.
USER_MODULES: dict[str, ModuleType] = {}


class ModelCodeError(SpecError):
    """The user's model code raised (any exception, ``SystemExit`` included) on import or construction."""


def _exit_fix(exc: BaseException, building: bool = False) -> str:
    if not isinstance(exc, SystemExit):
        return ""
    if building:
        return "a model must not exit while torchscope builds it; raise an exception instead"
    return (
        "a model file must not exit when torchscope imports it; "
        "move script code under `if __name__ == '__main__':`"
    )


@contextmanager
def user_modules_importable() -> Iterator[None]:
    """Make every user file imported for a spec importable under its stem while the block runs."""
    added = [stem for stem in USER_MODULES if stem not in sys.modules]
    for stem in added:
        sys.modules[stem] = USER_MODULES[stem]
    try:
        yield
    finally:
        for stem in added:
            if sys.modules.get(stem) is USER_MODULES[stem]:
                del sys.modules[stem]


def import_timm(spec: str) -> Any:
    try:
        import timm
    except ImportError:
        raise SpecError(f"{spec!r} needs timm, which is not installed; pip install timm") from None
    return timm


def build_timm(spec: str, kwargs: dict[str, Any], pretrained: bool, meta: bool) -> nn.Module:
    name = spec.removeprefix("timm:")
    if not name or ":" in name:
        raise SpecError(f"malformed spec {spec!r}; write timm:NAME, e.g. timm:resnet18")
    if pretrained:
        raise SpecError(f"--pretrained only reads torchvision weights; for {spec!r} pass --weights FILE")
    timm = import_timm(spec)
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join('timm:' + c for c in close)}?" if close else "see timm.list_models()"
        raise SpecError(f"unknown timm model {name!r}; {hint}")
    try:
        if meta:
            return build_on_meta(timm.create_model, name, pretrained=False, **kwargs)
        return timm.create_model(name, pretrained=False, **kwargs)  # type: ignore[no-any-return]
    except Exception as exc:
        builder_failed(f"timm:{name}", kwargs, exc)


def import_file(path: Path) -> Any:
    if not path.is_file():
        raise SpecError(f"file not found: {path}; check the path in the spec")
    module_name = f"_torchscope_user_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        USER_MODULES[path.stem] = sys.modules[module_name]
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import {path}; it must be a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # so that the file can import its siblings, as `python file.py` would allow
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[module_name]
        if not isinstance(exc, Exception | SystemExit):
            raise  # KeyboardInterrupt: the CLI tells a real Ctrl-C from the file raising it
        fix = _exit_fix(exc) or "fix the file"
        raise ModelCodeError(f"importing {path} failed: {describe(exc)}{user_location(exc)}; {fix}") from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    USER_MODULES[path.stem] = module  # the file the latest spec names wins
    return module


def import_module(dotted: str) -> Any:
    try:
        return importlib.import_module(dotted)
    except ImportError as exc:
        if user_location(exc):  # the module was found, and an import inside it failed
            raise ModelCodeError(f"importing {dotted!r} failed: {describe(exc)}{user_location(exc)}; fix that import") from None
        raise SpecError(
            f"cannot import {dotted!r} ({exc}); install it or run from the directory that holds it"
        ) from None
    except (Exception, SystemExit) as exc:
        fix = _exit_fix(exc) or "fix the module"
        raise ModelCodeError(f"importing {dotted!r} failed: {describe(exc)}{user_location(exc)}; {fix}") from None


def build_attr(spec: str, kwargs: dict[str, Any], meta: bool) -> nn.Module:
    where, _, attr = spec.rpartition(":")
    if not where or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise SpecError(f"malformed spec {spec!r}; use {SPEC_FORMS}")
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = import_file(Path(where))
    else:
        if not all(part.isidentifier() for part in where.split(".")):
            raise SpecError(f"malformed spec {spec!r}; use {SPEC_FORMS}")
        module = import_module(where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
            hint = (
                f"did you mean {', '.join(repr(c) for c in close)}?"
                if close
                else f"it has {', '.join(names[:8])}"
            )
            raise SpecError(f"{where!r} has no attribute {part!r}; {hint}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        if kwargs:
            raise SpecError(f"{spec!r} is a module instance; it takes no --arg (got {kwargs_text(kwargs)})")
        return obj
    if not callable(obj):
        raise SpecError(
            f"{spec!r} is a {type(obj).__name__}; it must be an nn.Module subclass, a factory or a module"
        )
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise SpecError(f"{spec!r} is class {obj.__name__}, not an nn.Module subclass")
    try:
        if meta:
            model = build_on_meta(obj, **kwargs)
        else:
            model = obj(**kwargs)
    except (Exception, SystemExit) as exc:
        at = user_location(exc)
        fix = _exit_fix(exc, building=True) or ("fix the model code there, or the --arg values" if at else "check the --arg values")
        raise ModelCodeError(f"calling {spec}({kwargs_text(kwargs)}) failed: {describe(exc)}{at}; {fix}") from None
    if not isinstance(model, nn.Module):
        raise SpecError(
            f"{spec!r} returned a {type(model).__name__}, not an nn.Module; point the spec at a model factory"
        )
    return model
