"""``torchscope report``: tree, summary, activations, grads and a freeze check on one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchscope._check.config import DEFAULT_STEP, ReferenceStep
from torchscope._parsing import split_patterns
from torchscope.cli._app import app
from torchscope.cli._common import input_sizes, load_cli_model
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import (
    DEFAULT_SEED,
    ArgOpt,
    CheckOpt,
    DtypeOpt,
    ForceOpt,
    FreezeBackboneOpt,
    FreezeOpt,
    HfConfigOpt,
    InputSizeOpt,
    JsonOpt,
    LrOpt,
    ModelArg,
    MomentumOpt,
    NoColorOpt,
    NoVerifyOpt,
    NumLabelsOpt,
    OptimizerOpt,
    PretrainedOpt,
    SeedOpt,
    SvgOpt,
    TaskOpt,
    TrainBnOpt,
    UnfreezeOpt,
    UnsafeLoadOpt,
    WeightDecayOpt,
    WeightsOpt,
)
from torchscope.cli._output import Output, command_inputs, emit

HTML_DEPRECATION = (
    "warning: `report --html FILE` is now `report --page FILE` (the charted page); for one release "
    "--html still writes the page, then it will save the console output as HTML like every other command"
)


@app.command("report")
def report_command(
    model: ModelArg,
    input_size: InputSizeOpt = None,
    page: Annotated[
        Path | None,
        typer.Option(
            "--page", help="Write the self-contained HTML page (charts included) here.", metavar="FILE"
        ),
    ] = None,
    modules: Annotated[
        str | None,
        typer.Option(
            "--modules",
            help="Comma-separated glob patterns of modules whose activations to record.",
            metavar="GLOBS",
        ),
    ] = None,
    dtype: DtypeOpt = None,
    check: CheckOpt = True,
    train_bn: TrainBnOpt = DEFAULT_STEP.train_bn,
    optimizer: OptimizerOpt = DEFAULT_STEP.optimizer,
    lr: LrOpt = DEFAULT_STEP.lr,
    momentum: MomentumOpt = DEFAULT_STEP.momentum,
    weight_decay: WeightDecayOpt = DEFAULT_STEP.weight_decay,
    seed: SeedOpt = DEFAULT_SEED,
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    no_verify: NoVerifyOpt = False,
    config: HfConfigOpt = None,
    task: TaskOpt = None,
    num_labels: NumLabelsOpt = None,
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    json: JsonOpt = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Deprecated: the old spelling of --page; for one release it still writes the charted page.",
            metavar="FILE",
        ),
    ] = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Tree, summary, activations, grads and a freeze check as one self-contained HTML page with charts; exit 1 if the check fails."""
    from torchscope._check import expected_frozen_names
    from torchscope._report import collect_report, eval_frozen_norms
    from torchscope.errors import SpecError
    from torchscope.render.html import render_html, render_report_terminal

    if html is not None:
        if page is not None:
            raise SpecError("give --page FILE only (--html is its deprecated spelling)")
        typer.echo(HTML_DEPRECATION, err=True)
        page = html
    out = Output(
        json=json, svg=svg, page=page, no_color=no_color, force=force,
        title=f"torchscope report {model}", inputs=command_inputs(model, weights),
    )  # fmt: skip
    # the same reference step as check-freeze, checked before any work (--optimizer adam --momentum 5)
    step = ReferenceStep(
        optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, train_bn=train_bn,
        seed=seed,
    )  # fmt: skip
    module_patterns = split_patterns(modules, option="--modules") or None
    sizes = input_sizes(model, input_size, device="cpu", dtype=dtype, batch=2)
    loaded = load_cli_model(
        model, weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load, verify=not no_verify,
        config=config, task=task, num_labels=num_labels, seed=step.seed,
        freeze=freeze, unfreeze=unfreeze, freeze_backbone=freeze_backbone,
    )  # fmt: skip
    if not train_bn:
        eval_frozen_norms(loaded)  # the loaded copy is ours: tree and page show the fixed modes
    frozen = expected_frozen_names(
        loaded, freeze=split_patterns(freeze), unfreeze=split_patterns(unfreeze, option="--unfreeze"),
        freeze_backbone=freeze_backbone,
    )  # fmt: skip
    data = collect_report(
        loaded, input_size=sizes if len(sizes) > 1 else sizes[0], title=model, modules=module_patterns,
        check=check, train_bn=step.train_bn, frozen=frozen, optimizer=step.optimizer, lr=step.lr,
        momentum=step.momentum, weight_decay=step.weight_decay, dtype=dtype, seed=step.seed,
    )  # fmt: skip
    emit(
        data,
        lambda: render_report_terminal(data, html_path=str(page) if page else None),
        out,
        page=lambda: render_html(data),
    )
    if data.check_ok is False:
        raise typer.Exit(ExitCode.VIOLATION)
