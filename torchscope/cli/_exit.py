"""The exit-code contract of every torchscope command, defined and applied in one place.

* 0 success; 1 an invariant was violated (the check ran and found a problem);
* 2 the input cannot be used: a :class:`~torchscope.errors.TorchscopeError` (bad spec, file or
  option), or the user's own model raising on import, construction or forward (any
  ``BaseException``, ``SystemExit`` and ``KeyboardInterrupt`` included): one line on stderr naming the
  user's file and line, the exception and the fix;
* 3 an internal error, a bug in torchscope: the traceback, then one line asking for a report.

:func:`guard` applies it; the app's command class (:mod:`torchscope.cli._app`) calls it around every
command, so no command has to remember to.
"""

from __future__ import annotations

import enum
import errno
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import TypeVar

import typer

from torchscope._usercode import describe, shown_path, user_frame
from torchscope.cli._output import spec_files
from torchscope.errors import TorchscopeError

R = TypeVar("R")


class ExitCode(enum.IntEnum):
    """What a torchscope command's exit status means."""

    OK = 0
    VIOLATION = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130  # Ctrl-C by the user (128 + SIGINT), as shells report it


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "success: the command ran and, where it checks something, every invariant held",
    ExitCode.VIOLATION: "an invariant was violated: the check ran and found a problem (the report says which)",
    ExitCode.BAD_INPUT: "the input cannot be used: a bad model spec, file, option or value, or the model's own "
    "code raising (at import, construction or forward, `SystemExit` and `KeyboardInterrupt` included); "
    "one line on stderr names the value (or the model file and line) and the fix, and stdout gets nothing",
    ExitCode.INTERNAL: "an internal error, a bug in torchscope: the traceback on stderr, then one line asking "
    "for a report",
    ExitCode.INTERRUPTED: "interrupted by Ctrl-C",
}
"""What each exit code means; docs/cli.md is generated from this table."""

BUG_LINE = "this is a bug in torchscope; please report it with the traceback above and the command you ran"


def spec_frame(exc: BaseException, spec: str | None) -> traceback.FrameSummary | None:
    """The innermost frame in the model spec's own file (``net.py`` of ``net.py:Net``, or the module of
    ``pkg.module:attr``, also when that is installed), in ``exc``'s traceback or its cause's."""
    if not spec:
        return None
    files = {os.path.realpath(p) for p in spec_files(spec)}
    module = sys.modules.get(spec.partition(":")[0]) if ":" in spec else None
    path = getattr(module, "__file__", None)
    if isinstance(path, str):
        files.add(os.path.realpath(path))
    current: BaseException | None = exc
    seen: set[int] = set()
    while files and current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = [
            f for f in traceback.extract_tb(current.__traceback__) if os.path.realpath(f.filename) in files
        ]
        if frames:
            return frames[-1]
        current = current.__cause__
    return None


def user_error_line(exc: BaseException, frame: traceback.FrameSummary) -> str:
    """The one line for an exception raised by the user's model code."""
    what = describe(exc)
    if isinstance(exc, (SystemExit, KeyboardInterrupt)):
        fix = (
            "a model file must not exit or interrupt when torchscope imports or runs it; "
            "move script code under `if __name__ == '__main__':`"
        )
    elif frame.name == "forward" or frame.name.endswith("forward"):
        fix = "fix the forward pass there, or give inputs it accepts (--input-size, --dtype)"
    else:
        fix = "fix the model code there, or the --arg values it was given"
    return f"error: your model raised {what} at {shown_path(frame.filename)}:{frame.lineno} (in {frame.name}); {fix}"


def _is_broken_pipe(exc: BaseException | None) -> bool:
    if isinstance(exc, SystemExit):  # Rich's way out of a closed pipe (`torchscope tree --help | head`)
        return _is_broken_pipe(exc.__context__)
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


@contextmanager
def _sigint_seen() -> Iterator[list[bool]]:
    """Tell a real Ctrl-C apart from a ``KeyboardInterrupt`` that the user's code raises."""
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        seen[0] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def usage_line(exc: BaseException) -> str:
    """The one line for a usage error (an unknown option, a missing argument, a value of the wrong
    type), as for every other bad input: ``error: <what>; see '<command> --help'``."""
    possibilities = sorted(getattr(exc, "possibilities", None) or ())
    message = getattr(exc, "message", None) if possibilities else None
    format_message = getattr(exc, "format_message", None)
    what = message or (format_message() if callable(format_message) else str(exc))
    what = " ".join(str(what).split()).rstrip(".")
    if what[:1].isupper() and what[1:2].islower():
        what = what[0].lower() + what[1:]
    if possibilities:
        what += f" (did you mean {' or '.join(possibilities)}?)"
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "torchscope"
    return f"error: {what}; see '{path} --help'"


def _echo_err(line: str) -> None:
    typer.echo(line, err=True)


def guard(call: Callable[[], R], spec: str | None = None) -> R:
    """Run ``call`` under the exit-code contract; every outcome but success becomes a ``typer.Exit``.

    ``spec`` is the command's model spec: frames in its file are the user's even where the file is
    installed (``pkg.module:attr`` from site-packages).
    """
    with _sigint_seen() as interrupted:
        try:
            return call()
        except (typer.Exit, typer.TyperException, typer.Abort):
            raise  # an exit code a command chose, or a usage error Typer reports (exit 2)
        except TorchscopeError as exc:
            _echo_err(f"error: {exc}")
            raise typer.Exit(ExitCode.BAD_INPUT) from None
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt) and interrupted[0]:
                _echo_err("interrupted")
                raise typer.Exit(ExitCode.INTERRUPTED) from None
            frame = user_frame(exc) or spec_frame(exc, spec)
            if frame is not None:
                _echo_err(user_error_line(exc, frame))
                raise typer.Exit(ExitCode.BAD_INPUT) from None
            if _is_broken_pipe(exc):
                raise  # Typer reports a closed pipe itself
            # a SystemExit that is not the model's is ours: torchscope exits through typer.Exit, so
            # one from elsewhere is a bug (and an exit 0 with nothing done would be a false success)
            if _is_out_of_memory(exc):
                _echo_err(
                    f"error: out of memory ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    "use a smaller --input-size or batch, or run `torchscope memory` to see what fits"
                )
                raise typer.Exit(ExitCode.BAD_INPUT) from None
            _print_traceback(exc, exc.__traceback__)
            _echo_err(f"error: {BUG_LINE}")
            raise typer.Exit(ExitCode.INTERNAL) from None


def _print_traceback(exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))
    sys.stderr.flush()
