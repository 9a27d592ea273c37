"""``torchscope check-freeze`` (a reference fine-tuning step, checked) and ``torchscope diff`` (two checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchscope.cli._app import app
from torchscope.cli._common import (
    ArgOpt,
    FreezeBackboneOpt,
    FreezeOpt,
    HtmlOpt,
    JsonOpt,
    ModelArg,
    NoColorOpt,
    Output,
    PretrainedOpt,
    SvgOpt,
    UnfreezeOpt,
    UnsafeLoadOpt,
    WeightsOpt,
    emit,
    handle_errors,
    load_cli_model,
    split_patterns,
)
from torchscope.errors import TorchscopeError


def parse_input_size(text: str) -> tuple[int, ...]:
    """``"2,3,64,64"`` -> ``(2, 3, 64, 64)``; anything else is an error naming the value.

    >>> parse_input_size("2, 3, 64, 64")
    (2, 3, 64, 64)
    """
    try:
        size = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        size = ()
    if not size or any(d < 1 for d in size):
        raise TorchscopeError(
            f"--input-size {text!r} must be comma-separated positive integers, e.g. 2,3,224,224"
        )
    return size


@app.command("check-freeze")
@handle_errors
def check_freeze_command(
    model: ModelArg,
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd, adam or adamw.")] = "sgd",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 0.01,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum (Adam: beta1).")] = 0.0,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay.")] = 0.0,
    steps: Annotated[int, typer.Option("--steps", help="Training steps to run before comparing.")] = 1,
    train_bn: Annotated[
        bool,
        typer.Option(
            "--train-bn/--eval-bn",
            help="Leave frozen norm layers in train mode as model.train() does (the bug), or put them in eval (the fix).",
        ),
    ] = True,
    input_size: Annotated[
        str | None,
        typer.Option(
            "--input-size", help="Input shape, e.g. 2,3,224,224 (default: the model family's, batch 2)."
        ),
    ] = None,
    fingerprint: Annotated[
        bool, typer.Option("--fingerprint", help="Keep a fingerprint per tensor instead of a copy.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="Where to train the copy: cpu, cuda, cuda:1, mps.")] = "cpu",
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Train a copy of MODEL for a few synthetic steps and prove frozen stays frozen; exit 1 on any violation."""
    from torchscope._check import check_freeze, expected_frozen_names
    from torchscope._loader import default_input_size
    from torchscope.render.check import render_check

    size = parse_input_size(input_size) if input_size else default_input_size(model, batch=2)
    loaded = load_cli_model(
        model,
        weights=weights,
        args=arg,
        pretrained=pretrained,
        unsafe_load=unsafe_load,
        device=device,
        freeze=freeze,
        unfreeze=unfreeze,
        freeze_backbone=freeze_backbone,
    )
    expected = expected_frozen_names(
        loaded,
        freeze=split_patterns(freeze),
        unfreeze=split_patterns(unfreeze),
        freeze_backbone=freeze_backbone,
    )
    report = check_freeze(
        loaded,
        input_size=size,
        optimizer=optimizer.lower(),
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        steps=steps,
        train_bn=train_bn,
        frozen=expected,
        mode="fingerprint" if fingerprint else "exact",
    )
    title = f"check-freeze {model}"
    emit(
        report,
        lambda: render_check(report, title=title),
        Output(json=json, html=html, svg=svg, no_color=no_color, title=title),
    )
    if not report.ok:
        raise typer.Exit(1)


@app.command("diff")
@handle_errors
def diff_command(
    a: Annotated[
        Path, typer.Argument(help="The checkpoint before (e.g. the pretrained weights).", show_default=False)
    ],
    b: Annotated[
        Path, typer.Argument(help="The checkpoint after (e.g. the fine-tuned weights).", show_default=False)
    ],
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture (e.g. resnet18) for module names and types.")
    ] = None,
    expect_frozen: Annotated[
        str | None,
        typer.Option(
            "--expect-frozen",
            help="Comma-separated patterns of tensors that must be unchanged (exit 1 if not).",
        ),
    ] = None,
    unsafe_load: UnsafeLoadOpt = False,
    expand: Annotated[bool, typer.Option("--expand", help="List unchanged tensors too.")] = False,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Compare two checkpoints tensor by tensor, grouped by module; exit 1 if an expected-frozen tensor changed."""
    from torchscope._diff import diff_checkpoints
    from torchscope.render.diff import render_diff

    report = diff_checkpoints(
        a, b, arch=arch, expect_frozen=split_patterns(expect_frozen) or None, unsafe_load=unsafe_load
    )
    emit(
        report,
        lambda: render_diff(report, expand=expand),
        Output(json=json, html=html, svg=svg, no_color=no_color, title=f"torchscope diff {a.name} {b.name}"),
    )
    if not report.ok:
        raise typer.Exit(1)
