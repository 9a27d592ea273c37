"""``torchscope report``: tree, summary, activations, grads and a freeze check on one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchscope.cli._app import app
from torchscope.cli._common import (
    ArgOpt,
    FreezeBackboneOpt,
    FreezeOpt,
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


@app.command("report")
@handle_errors
def report_command(
    model: ModelArg,
    input_size: Annotated[
        str | None,
        typer.Option("--input-size", help="Input shape, e.g. 2,3,224,224 (default: the model's crop size, batch 2)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the self-contained HTML page (charts included) here.")
    ] = None,
    modules: Annotated[
        str | None, typer.Option("--modules", help="Comma-separated glob patterns of modules whose activations to record.")
    ] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="dtype of the synthetic inputs.")] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the freeze check (one step on a copy).")] = True,
    train_bn: Annotated[
        bool,
        typer.Option("--train-bn/--eval-bn", help="Frozen norm layers in train mode as model.train() leaves them, or in eval."),
    ] = True,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd, adam or adamw (freeze check).")] = "sgd",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (freeze check).")] = 0.01,
    momentum: Annotated[float, typer.Option("--momentum", help="Momentum (freeze check).")] = 0.9,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay (freeze check).")] = 1e-4,
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    json: JsonOpt = False,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Tree, summary, activations, grads and a freeze check as one self-contained HTML page with charts; exit 1 if the check fails."""
    from torchscope._check import expected_frozen_names
    from torchscope._inputs import parse_input_size
    from torchscope._loader import default_input_size
    from torchscope._report import collect_report, eval_frozen_norms
    from torchscope.render.html import render_html, render_report_terminal

    sizes = parse_input_size(input_size) if input_size else [default_input_size(model, batch=2)]
    loaded = load_cli_model(
        model, weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load,
        freeze=freeze, unfreeze=unfreeze, freeze_backbone=freeze_backbone,
    )  # fmt: skip
    if not train_bn:
        eval_frozen_norms(loaded)  # the loaded copy is ours: tree and page show the fixed modes
    frozen = expected_frozen_names(
        loaded, freeze=split_patterns(freeze), unfreeze=split_patterns(unfreeze), freeze_backbone=freeze_backbone
    )
    data = collect_report(
        loaded, input_size=sizes if len(sizes) > 1 else sizes[0], title=model, modules=split_patterns(modules) or None,
        check=check, train_bn=train_bn, frozen=frozen, optimizer=optimizer.lower(), lr=lr, momentum=momentum,
        weight_decay=weight_decay, dtype=dtype,
    )  # fmt: skip
    if html is not None:
        try:
            html.write_text(render_html(data), encoding="utf-8")
        except OSError as exc:
            raise TorchscopeError(f"cannot write --html {str(html)!r} ({exc.strerror}); pick a writable path") from None
    emit(
        data,
        lambda: render_report_terminal(data, html_path=str(html) if html else None),
        Output(json=json, svg=svg, no_color=no_color, title=f"torchscope report {model}"),
    )
    if data.check_ok is False:
        raise typer.Exit(1)
