"""What every ``hf:`` module shares: transformers and peft imported offline, and their errors in one line."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torchscope._loader.common import first_line
from torchscope._usercode import raised_in_torchscope
from torchscope.errors import SpecError

_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
_INSTALL = "pip install 'torchscope[hf]'"


@contextmanager
def offline() -> Iterator[None]:
    """Run transformers/peft with the hub switched off and quiet; the environment, transformers'
    log level and its progress bars are put back after."""
    saved = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    tf_logging = getattr(sys.modules.get("transformers"), "logging", None)
    level = bars = None
    if tf_logging is not None:
        level, bars = tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()
        tf_logging.set_verbosity_error()
        tf_logging.disable_progress_bar()  # "Loading weights" bars would land in our output
    try:
        with warnings.catch_warnings():
            # deprecation notes and "weights not initialized" hints from the libraries, not ours
            warnings.simplefilter("ignore")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if tf_logging is not None:
            tf_logging.set_verbosity(level)
            if bars:
                tf_logging.enable_progress_bar()


def import_transformers() -> Any:
    """transformers, imported with the hub switched off; a SpecError if it is not installed."""
    try:
        with offline():
            import transformers
    except ImportError:
        raise SpecError(f"hf: models need transformers, which is not installed; {_INSTALL}") from None
    return transformers


def import_peft() -> Any:
    try:
        with offline():
            import peft
    except ImportError:
        raise SpecError(f"the directory holds a PEFT adapter, which needs peft; {_INSTALL}") from None
    return peft


def library_detail(exc: BaseException) -> str:
    """The line of a transformers/huggingface_hub error that says what is wrong.

    Their validation errors open with a heading (``Class validation error for validator
    'validate_architecture':``) and give the reason on the next line.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[1][:300] if len(lines) >= 2 and lines[0].endswith(":") else first_line(exc)
    return detail.rstrip(".")  # the caller's "; fix ..." follows


def reraise_ours(exc: BaseException) -> None:
    """Re-raise ``exc`` when torchscope's own code raised it (a bug, exit 3), not the library on the user's input."""
    if raised_in_torchscope(exc):
        raise exc
