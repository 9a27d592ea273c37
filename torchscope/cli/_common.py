"""What every command shares: model loading, and re-exports of the options, parsers and output.

A command is parse -> load -> collect -> :func:`emit`. The exit-code contract is applied by the app
itself (:mod:`torchscope.cli._exit`), the options are declared once in :mod:`torchscope.cli._options`,
value grammars are parsed by :mod:`torchscope._parsing`, and output goes through
:mod:`torchscope.cli._output`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from torchscope._parsing import parse_kwargs as parse_kwargs
from torchscope._parsing import split_patterns as split_patterns
from torchscope.cli._options import ArgOpt as ArgOpt
from torchscope.cli._options import FreezeBackboneOpt as FreezeBackboneOpt
from torchscope.cli._options import FreezeOpt as FreezeOpt
from torchscope.cli._options import HtmlOpt as HtmlOpt
from torchscope.cli._options import JsonOpt as JsonOpt
from torchscope.cli._options import ModelArg as ModelArg
from torchscope.cli._options import NoColorOpt as NoColorOpt
from torchscope.cli._options import PretrainedOpt as PretrainedOpt
from torchscope.cli._options import SvgOpt as SvgOpt
from torchscope.cli._options import UnfreezeOpt as UnfreezeOpt
from torchscope.cli._options import UnsafeLoadOpt as UnsafeLoadOpt
from torchscope.cli._options import WeightsOpt as WeightsOpt
from torchscope.cli._output import Output as Output
from torchscope.cli._output import console as console
from torchscope.cli._output import emit as emit

if TYPE_CHECKING:
    from torch import nn

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Deprecated no-op: the app applies the exit-code contract to every command (see ``_exit``)."""
    return func


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

    # parsed before the (slow) load, so a bad value fails at once
    kwargs = parse_kwargs(args)
    freeze_patterns = split_patterns(freeze, option="--freeze")
    unfreeze_patterns = split_patterns(unfreeze, option="--unfreeze")
    model = load_model(
        spec, weights=weights, device=device, unsafe_load=unsafe_load, pretrained=pretrained, kwargs=kwargs
    )
    if freeze_backbone:
        do_freeze_backbone(model)
    if freeze_patterns:
        do_freeze(model, *freeze_patterns)
    if unfreeze_patterns:
        do_unfreeze(model, *unfreeze_patterns)
    return model
