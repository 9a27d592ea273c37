"""The Typer application object; command modules register on it.

Every command registered with ``@app.command(...)`` is a :class:`TorchscopeCommand`, and the app
is a :class:`TorchscopeGroup`: between them, every command, present and future, gets

* the exit-code contract of :mod:`torchscope.cli._exit` (no per-command decorator),
* ``--json`` stdout that holds only JSON: while a command writes JSON, whatever the user's model
  prints goes to stderr (:func:`torchscope.cli._output.json_stdout`),
* flags without a ``<bool>`` type in ``--help``.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from torchscope.cli._exit import guard
from torchscope.cli._output import json_stdout


def _blank_flag_metavar(option: Any) -> None:
    # Typer's rich help prints an option's metavar, ``<bool>`` for a flag; a flag takes no value.
    if option is not None and getattr(option, "is_flag", False):
        option.metavar = ""


def _writes_json_to_stdout(ctx: Any) -> bool:
    for param in ctx.command.params:
        if "--json" in getattr(param, "opts", ()):
            value = ctx.params.get(param.name or "")
            return value is True or value == "-"
    return False


class TorchscopeCommand(TyperCommand):
    """A command under the exit-code contract, whose ``--json`` stdout holds only JSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _blank_flag_metavar(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _blank_flag_metavar(option)
        return option

    def invoke(self, ctx: Any) -> Any:
        def call() -> Any:
            with json_stdout(_writes_json_to_stdout(ctx)):
                return super(TorchscopeCommand, self).invoke(ctx)

        spec = ctx.params.get("model")
        return guard(call, spec if isinstance(spec, str) else None)


class TorchscopeGroup(TyperGroup):
    """The app: the exit-code contract around anything a command did not map itself."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        _blank_flag_metavar(option)
        return option

    def invoke(self, ctx: Any) -> Any:
        return guard(lambda: super(TorchscopeGroup, self).invoke(ctx))


class TorchscopeTyper(typer.Typer):
    """A Typer app whose commands are :class:`TorchscopeCommand` unless a command names its own class."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Any:  # type: ignore[override]
        return super().command(name, cls=cls or TorchscopeCommand, **kwargs)


app = TorchscopeTyper(
    name="torchscope",
    cls=TorchscopeGroup,
    help="Look inside any nn.Module and prove the invariants of a fine-tune.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
