"""torchscope's command line: thin Typer commands over the collectors and renderers.

Each command lives in its own module, which registers itself on :data:`app` when imported. The
modules import torch only inside their command functions, so ``torchscope --help`` stays fast.
"""

from __future__ import annotations

import importlib

from torchscope.cli._app import app

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = ("tree", "inspect", "check", "bench", "memory", "report")

for _name in COMMAND_MODULES:
    importlib.import_module(f"torchscope.cli.{_name}")


def main() -> None:
    """Entry point of the ``torchscope`` console script."""
    app()


__all__ = ["app", "main"]
