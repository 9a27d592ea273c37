"""torchscope's command line: thin Typer commands over the collectors and renderers.

Each command lives in its own module, which registers itself on :data:`app` when imported. The
modules import torch only inside their command functions, so ``torchscope --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading

from torchscope.cli._app import app

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = ("tree", "inspect", "check", "bench", "memory", "report")

for _name in COMMAND_MODULES:
    importlib.import_module(f"torchscope.cli.{_name}")


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
    return 1


def main() -> None:
    """Entry point of the ``torchscope`` console script (and of ``python -m torchscope``).

    The command has answered when ``app()`` returns; a non-daemon thread that the user's model
    started would keep the process alive after that (and write after the answer), so then the
    process ends at once, with the command's exit status.
    """
    before = set(threading.enumerate())
    try:
        app()
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    if any(t.is_alive() and not t.daemon and t not in before for t in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    sys.exit(status)


__all__ = ["app", "main"]
