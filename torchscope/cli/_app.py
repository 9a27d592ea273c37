"""The Typer application object; command modules register on it.

Every command registered with ``@app.command(...)`` is a :class:`TorchscopeCommand`, and the app
is a :class:`TorchscopeGroup`: between them, every command, present and future, gets

* the exit-code contract of :mod:`torchscope.cli._exit` (no per-command decorator),
* ``--json`` stdout that holds only JSON: while a command writes JSON, whatever the user's model
  prints goes to stderr (:func:`torchscope.cli._output.json_stdout`),
* outputs never written over a file the command read (:mod:`torchscope.cli._reads`),
* flags without a ``<bool>`` type in ``--help``,
* the old spellings of renamed options, for one release (:mod:`torchscope.cli._renames`),
* usage errors (an unknown option, a missing argument, a bad value for ``--depth``) on one line,
  exit 2, as every other bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperCommand, TyperGroup

from torchscope.cli._exit import ExitCode, guard, usage_line
from torchscope.cli._output import json_stdout
from torchscope.cli._reads import reading
from torchscope.cli._renames import RenameClash, rewrite_renamed


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

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        options = {opt for param in self.params for opt in (*param.opts, *getattr(param, "secondary_opts", ()))}
        try:
            args = rewrite_renamed(self.name or "", options, args, lambda line: typer.echo(line, err=True))
        except RenameClash as exc:
            raise UsageError(str(exc), ctx) from None
        try:
            return super().parse_args(ctx, args)  # type: ignore[no-any-return]
        except ClickException as exc:
            if getattr(exc, "ctx", False) is None:  # `--input-size` given no value: say which command
                exc.ctx = ctx  # type: ignore[attr-defined]
            raise

    def invoke(self, ctx: Any) -> Any:
        def call() -> Any:
            # every file the command reads is recorded, so that no output is written over one
            with reading(), json_stdout(_writes_json_to_stdout(ctx)):
                return super(TorchscopeCommand, self).invoke(ctx)

        spec = ctx.params.get("model")
        return guard(call, spec if isinstance(spec, str) else None)


class TorchscopeGroup(TyperGroup):
    """The app: the exit-code contract around anything a command did not map itself, and usage
    errors on one line (Typer draws a box of 3-5 lines)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _blank_flag_metavar(param)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def run() -> Any:
            return super(TorchscopeGroup, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return run()
        try:
            # not standalone: Typer hands back usage errors and exit codes instead of printing them
            status = run()
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(ExitCode.VIOLATION)
        except ClickException as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # bare `torchscope`: the help was printed
                typer.echo(usage_line(exc), err=True)
            sys.exit(exc.exit_code)
        sys.exit(status if isinstance(status, int) else ExitCode.OK)

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


def _print_version(value: bool) -> None:
    if value:
        from torchscope import __version__

        typer.echo(f"torchscope {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _app_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print torchscope's version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Look inside any nn.Module and prove the invariants of a fine-tune."""
