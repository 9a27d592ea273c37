"""``torchscope check-freeze`` (a reference fine-tuning step, checked) and ``torchscope diff`` (two checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchscope._checkparts.config import DEFAULT_STEP
from torchscope._parsing import split_patterns
from torchscope.cli._app import app
from torchscope.cli._common import load_cli_model, load_inputs
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import NoVerifyOpt, StepsOpt, UnsafeLoadOpt
from torchscope.cli._output import command_inputs, emit
from torchscope.cli._sets import Defaults, FreezeSet, InputSet, LoadSet, OutputSet, StepSet, takes_sets
from torchscope.errors import SpecError


@app.command("check-freeze")
@takes_sets
def check_freeze_command(
    *,
    load: Annotated[LoadSet, Defaults(device="cpu")],
    frozen: FreezeSet,
    step: StepSet,
    steps: StepsOpt = DEFAULT_STEP.steps,
    inputs: InputSet,
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
    out: OutputSet,
) -> None:
    """Train a copy of MODEL for a few synthetic steps and prove frozen stays frozen; exit 1 on any violation."""
    from torchscope._check import check_freeze, expected_frozen_names, tensor_counts
    from torchscope._guard.view import GuardView
    from torchscope.render.check import render_check

    model = load.model
    title = f"check-freeze {model}"
    output = out.output(title, command_inputs(model, load.weights))
    reference = step.reference(inputs.seed, steps)  # checked before any work
    sizes = load_inputs(load, inputs, batch=2)
    loaded = load_cli_model(load, frozen, seed=inputs.seed)
    expected = expected_frozen_names(
        loaded,
        freeze=split_patterns(frozen.freeze, option="--freeze"),
        unfreeze=split_patterns(frozen.unfreeze, option="--unfreeze"),
        freeze_backbone=frozen.freeze_backbone,
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
        loaded, input_size=sizes, optimizer=reference.optimizer, lr=reference.lr, momentum=reference.momentum,
        weight_decay=reference.weight_decay, steps=reference.steps, train_bn=reference.train_bn, frozen=expected,
        mode="fingerprint" if fingerprint else "exact", seed=reference.seed, dtype=inputs.dtype, observer=GuardView(),
    )  # fmt: skip
    emit(report, lambda: render_check(report, title=title), output)
    if not report.ok:
        raise typer.Exit(ExitCode.VIOLATION)


@app.command("diff")
@takes_sets
def diff_command(
    *,
    a: Annotated[
        Path, typer.Argument(help="The checkpoint before (e.g. the pretrained weights).", show_default=False)
    ],
    b: Annotated[
        Path, typer.Argument(help="The checkpoint after (e.g. the fine-tuned weights).", show_default=False)
    ],
    arch: Annotated[
        str | None, typer.Option("--arch", help="Architecture (e.g. resnet18) for module names and types.", metavar="MODEL")
    ] = None,
    expect_frozen: Annotated[
        str | None,
        typer.Option(
            "--expect-frozen",
            help="Comma-separated patterns of tensors that must be unchanged (exit 1 if not).",
            metavar="GLOBS",
        ),
    ] = None,
    unsafe_load: UnsafeLoadOpt = False,
    no_verify: NoVerifyOpt = False,
    unchanged: Annotated[bool, typer.Option("--unchanged", help="List unchanged tensors too.")] = False,
    out: OutputSet,
) -> None:
    """Compare two checkpoints tensor by tensor, grouped by module; exit 1 if an expected-frozen tensor changed."""
    from torchscope._diff import diff_checkpoints
    from torchscope.render.diff import render_diff

    output = out.output(f"torchscope diff {a.name} {b.name}", command_inputs(None, a, b))
    frozen = split_patterns(expect_frozen, option="--expect-frozen") or None
    report = diff_checkpoints(
        a, b, arch=arch, expect_frozen=frozen, unsafe_load=unsafe_load, verify=not no_verify
    )
    emit(report, lambda: render_diff(report, expand=unchanged), output)
    if not report.ok:
        raise typer.Exit(ExitCode.VIOLATION)
