"""The Typer application object; command modules register on it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="torchscope",
    help="Look inside any nn.Module and prove the invariants of a fine-tune.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
