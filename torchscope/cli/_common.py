"""What every command shares: option types, error handling, model loading, and output.

A command is parse -> load -> collect -> :func:`emit`. Errors derived from
:class:`~torchscope.errors.TorchscopeError` are caught once by :func:`handle_errors`: one line on
stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import ast
import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console, RenderableType

from torchscope.errors import TorchscopeError

if TYPE_CHECKING:
    from torch import nn

P = ParamSpec("P")
R = TypeVar("R")

# ---------------------------------------------------------------------------------------------
# Option types, shared so that every command spells them the same way.
ModelArg = Annotated[
    str,
    typer.Argument(
        help="torchvision name (resnet18), timm:NAME, pkg.module:attr, path/to/file.py:attr, "
        "or a TorchScript/.pt2/whole-model file.",
        show_default=False,
    ),
]
WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", help="state_dict file to load into the architecture.")
]
ArgOpt = Annotated[
    list[str] | None,
    typer.Option("--arg", help="Keyword argument for the model builder, k=v (value is a Python literal). Repeatable."),
]
PretrainedOpt = Annotated[
    bool, typer.Option("--pretrained", help="Load torchvision's default weights from the local torch hub cache.")
]
UnsafeLoadOpt = Annotated[
    bool,
    typer.Option("--unsafe-load", help="Allow files that pickle a whole module (runs code from the file)."),
]
FreezeOpt = Annotated[
    str | None, typer.Option("--freeze", help="Comma-separated glob patterns of modules/params to freeze.")
]
UnfreezeOpt = Annotated[
    str | None, typer.Option("--unfreeze", help="Comma-separated glob patterns of modules/params to unfreeze.")
]
FreezeBackboneOpt = Annotated[
    bool, typer.Option("--freeze-backbone", help="Freeze everything but the classifier head.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Write the collected data as JSON to stdout.")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Also save the report as an HTML file.")]
SvgOpt = Annotated[Path | None, typer.Option("--svg", help="Also save the report as an SVG file.")]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="Plain text, no colours.")]


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`TorchscopeError` into one stderr line and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except TorchscopeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """Parse repeated ``--arg k=v`` values; a value that is no Python literal stays a string.

    >>> parse_kwargs(["num_classes=10", "weights=None", "name=abc"])
    {'num_classes': 10, 'weights': None, 'name': 'abc'}
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise TorchscopeError(f"--arg {pair!r} must look like key=value, e.g. --arg num_classes=10")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def split_patterns(text: str | None) -> list[str]:
    """Split a comma-separated pattern option into patterns, dropping blanks."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def load_cli_model(
    spec: str,
    *,
    weights: Path | None = None,
    args: list[str] | None = None,
    pretrained: bool = False,
    device: str = "cpu",
    unsafe_load: bool = False,
    freeze: str | None = None,
    unfreeze: str | None = None,
    freeze_backbone: bool = False,
) -> nn.Module:
    """Load a model the way every command's options describe, then apply freeze options."""
    from torchscope._freeze import freeze as do_freeze
    from torchscope._freeze import freeze_backbone as do_freeze_backbone
    from torchscope._freeze import unfreeze as do_unfreeze
    from torchscope._loader import load_model

    model = load_model(
        spec,
        weights=weights,
        device=device,
        unsafe_load=unsafe_load,
        pretrained=pretrained,
        kwargs=parse_kwargs(args),
    )
    if freeze_backbone:
        do_freeze_backbone(model)
    if freeze:
        do_freeze(model, *split_patterns(freeze))
    if unfreeze:
        do_unfreeze(model, *split_patterns(unfreeze))
    return model


@dataclass(frozen=True)
class Output:
    """Where and how a command's report goes."""

    json: bool = False
    html: Path | None = None
    svg: Path | None = None
    no_color: bool = False
    title: str = "torchscope"


def console(no_color: bool = False, stderr: bool = False) -> Console:
    """The console commands print to."""
    return Console(no_color=no_color, highlight=False, stderr=stderr)


def emit(data: Any, render: Callable[[], RenderableType], out: Output) -> None:
    """Print ``render()`` (or ``data.to_dict()`` as JSON) and save HTML/SVG copies when asked.

    Every format comes from the same collected ``data``: nothing is re-run for another format.
    """
    renderable: RenderableType | None = None
    if out.html is not None or out.svg is not None:
        renderable = render()
        recorder = Console(record=True, file=io.StringIO(), width=120, force_terminal=True, highlight=False)
        recorder.print(renderable)
        try:
            if out.html is not None:
                recorder.save_html(str(out.html), clear=False)
            if out.svg is not None:
                recorder.save_svg(str(out.svg), title=out.title, clear=False)
        except OSError as exc:
            raise TorchscopeError(f"cannot write report file: {exc}; pick a writable path") from None
    if out.json:
        typer.echo(json.dumps(data.to_dict(), indent=2, default=str))
    else:
        console(out.no_color).print(renderable if renderable is not None else render())
