"""Telling the user's code apart from ours: where in *their* file an exception was raised.

Torch-free and CLI-free: the loader names the user's file and line when a model file raises on
import or construction, and the CLI's exit-code contract can name it for any other exception.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from pathlib import Path

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {_PACKAGE_DIR, *(paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib"))}
    return tuple(os.path.realpath(d) for d in dirs if d)


_LIBRARY_DIRS = _library_dirs()


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code: not torchscope, not the standard library, not installed.

    >>> is_user_file(__file__), is_user_file(os.__file__), is_user_file("/home/me/net.py")
    (False, False, True)
    """
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = os.path.realpath(filename)
    if "site-packages" in path or "dist-packages" in path:
        return False
    return not any(path == d or path.startswith(d + os.sep) for d in _LIBRARY_DIRS)


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the user's code in ``exc``'s traceback (or in its cause's)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = [f for f in traceback.extract_tb(current.__traceback__) if is_user_file(f.filename)]
        if frames:
            return frames[-1]
        current = current.__cause__
    return None


def raised_in_torchscope(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is torchscope's own code (not a library's or the user's)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    path = os.path.realpath(frames[-1].filename)
    return path.startswith(_PACKAGE_DIR + os.sep)


def shown_path(filename: str) -> str:
    """``filename`` relative to the working directory when it is below it, else as it is."""
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def describe(exc: BaseException) -> str:
    """``ValueError: width must be >= 0``, ``SystemExit(0)``, ``KeyboardInterrupt``.

    >>> describe(SystemExit(0)), describe(ValueError("bad")), describe(KeyError())
    ('SystemExit(0)', 'ValueError: bad', 'KeyError')
    """
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def user_location(exc: BaseException) -> str:
    """`` at net.py:7 (in __init__)`` for the user's innermost frame, or ``""`` when none is theirs."""
    frame = user_frame(exc)
    if frame is None:
        return ""
    return f" at {shown_path(frame.filename)}:{frame.lineno} (in {frame.name})"
