"""``torchscope check-freeze`` (a reference fine-tuning step, checked) and ``torchscope diff`` (two checkpoints)."""

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
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    FreezeBackboneOpt,
    FreezeOpt,
    HfConfigOpt,
    HtmlOpt,
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
    StepsOpt,
    SvgOpt,
    TaskOpt,
    TrainBnOpt,
    UnfreezeOpt,
    UnsafeLoadOpt,
    WeightDecayOpt,
    WeightsOpt,
)
from torchscope.cli._output import Output, command_inputs, emit
from torchscope.errors import SpecError


@app.command("check-freeze")
def check_freeze_command(
    model: ModelArg,
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
    optimizer: OptimizerOpt = DEFAULT_STEP.optimizer,
    lr: LrOpt = DEFAULT_STEP.lr,
    momentum: MomentumOpt = DEFAULT_STEP.momentum,
    weight_decay: WeightDecayOpt = DEFAULT_STEP.weight_decay,
    steps: StepsOpt = DEFAULT_STEP.steps,
    train_bn: TrainBnOpt = DEFAULT_STEP.train_bn,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    seed: SeedOpt = DEFAULT_SEED,
    fingerprint: Annotated[
        bool, typer.Option("--fingerprint", help="Keep a fingerprint per tensor instead of a copy.")
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Run even when nothing is frozen or nothing is trainable (what had nothing to check is shown as not checked).",
        ),
    ] = False,
    device: DeviceOpt = "cpu",
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Train a copy of MODEL for a few synthetic steps and prove frozen stays frozen; exit 1 on any violation."""
    from torchscope._check import check_freeze, expected_frozen_names, tensor_counts
    from torchscope.render.check import render_check

    title = f"check-freeze {model}"
    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force, title=title,
        inputs=command_inputs(model, weights),
    )  # fmt: skip
    step = ReferenceStep(optimizer, lr, momentum, weight_decay, steps, train_bn, seed)  # checked before any work
    sizes = input_sizes(model, input_size, device=device, dtype=dtype, batch=2)
    loaded = load_cli_model(
        model, weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load, device=device,
        verify=not no_verify, seed=seed,
        config=config, task=task, num_labels=num_labels, freeze=freeze, unfreeze=unfreeze, freeze_backbone=freeze_backbone,
    )  # fmt: skip
    expected = expected_frozen_names(
        loaded,
        freeze=split_patterns(freeze, option="--freeze"),
        unfreeze=split_patterns(unfreeze, option="--unfreeze"),
        freeze_backbone=freeze_backbone,
    ) or None  # `--freeze a --unfreeze a` leaves no name: judged by requires_grad, as with no option
    frozen_count, trainable_count = tensor_counts(loaded, expected)
    if not allow_empty and frozen_count == 0:
        raise SpecError(
            f"nothing in {model} is frozen, so there is nothing to check; freeze something "
            "(--freeze 'backbone.*', --freeze-backbone) or pass --allow-empty"
        )
    if not allow_empty and trainable_count == 0:
        raise SpecError(
            f"nothing in {model} is trainable, so no step updates anything and 'every trainable param updated' has "
            "nothing to check; leave something to train (--unfreeze 'fc.*', --freeze-backbone) or pass --allow-empty"
        )
    report = check_freeze(
        loaded, input_size=sizes, optimizer=step.optimizer, lr=step.lr, momentum=step.momentum,
        weight_decay=step.weight_decay, steps=step.steps, train_bn=step.train_bn, frozen=expected,
        mode="fingerprint" if fingerprint else "exact", seed=step.seed, dtype=dtype,
    )  # fmt: skip
    emit(report, lambda: render_check(report, title=title), out)
    if not report.ok:
        raise typer.Exit(ExitCode.VIOLATION)


@app.command("diff")
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
    no_verify: NoVerifyOpt = False,
    expand: Annotated[bool, typer.Option("--expand", help="List unchanged tensors too.")] = False,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Compare two checkpoints tensor by tensor, grouped by module; exit 1 if an expected-frozen tensor changed."""
    from torchscope._diff import diff_checkpoints
    from torchscope.render.diff import render_diff

    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force,
        title=f"torchscope diff {a.name} {b.name}", inputs=command_inputs(None, a, b),
    )  # fmt: skip
    frozen = split_patterns(expect_frozen, option="--expect-frozen") or None
    report = diff_checkpoints(
        a, b, arch=arch, expect_frozen=frozen, unsafe_load=unsafe_load, verify=not no_verify
    )
    emit(report, lambda: render_diff(report, expand=expand), out)
    if not report.ok:
        raise typer.Exit(ExitCode.VIOLATION)
