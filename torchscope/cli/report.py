"""``torchscope report``: tree, summary, activations, grads and a freeze check on one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from torchscope._parsing import split_patterns
from torchscope.cli._app import app
from torchscope.cli._common import load_cli_model, load_inputs
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import CheckOpt, ModulesOpt, ProgressOpt
from torchscope.cli._output import command_inputs, emit, progress_shown
from torchscope.cli._sets import Defaults, FreezeSet, InputSet, LoadSet, OutputSet, StepSet, takes_sets
from torchscope.errors import SpecError


@app.command("report")
@takes_sets
def report_command(
    *,
    load: Annotated[LoadSet, Defaults(device="cpu")],
    inputs: InputSet,
    page: Annotated[
        Path | None,
        typer.Option(
            "--page", help="Write the self-contained HTML page (charts included) here.", metavar="FILE"
        ),
    ] = None,
    modules: ModulesOpt = None,
    check: CheckOpt = True,
    step: StepSet,
    frozen: FreezeSet,
    out: OutputSet,
    progress: ProgressOpt = True,
) -> None:
    """Tree, summary, activations, grads and a freeze check as one self-contained HTML page with charts; exit 1 if the check fails."""
    from torchscope._check import expected_frozen_names
    from torchscope._report import collect_report, eval_frozen_norms
    from torchscope.render.html import render_html, render_report_terminal

    model = load.model
    output = out.output(f"torchscope report {model}", command_inputs(model, load.weights), page=page)
    # the same reference step as check-freeze, checked before any work (--optimizer adam --momentum 5)
    reference = step.reference(inputs.seed)
    module_patterns = split_patterns(modules, option="--modules") or None
    if load.device.startswith("meta"):
        raise SpecError("--device meta: report shows values (activations, grads), so it needs cpu or cuda")
    sizes = load_inputs(load, inputs, batch=2)
    loaded = load_cli_model(load, frozen, seed=reference.seed)
    if not reference.train_bn:
        eval_frozen_norms(loaded)  # the loaded copy is ours: tree and page show the fixed modes
    expected = expected_frozen_names(
        loaded, freeze=split_patterns(frozen.freeze), unfreeze=split_patterns(frozen.unfreeze, option="--unfreeze"),
        freeze_backbone=frozen.freeze_backbone,
    )  # fmt: skip
    with progress_shown(progress and not out.json, out.no_color) as bar:
        data = collect_report(
            loaded, input_size=sizes if len(sizes) > 1 else sizes[0], title=model, modules=module_patterns,
            check=check, train_bn=reference.train_bn, frozen=expected, optimizer=reference.optimizer, lr=reference.lr,
            momentum=reference.momentum, weight_decay=reference.weight_decay, dtype=inputs.dtype, seed=reference.seed,
            progress=bar,
        )  # fmt: skip
    emit(
        data,
        lambda: render_report_terminal(data, html_path=str(page) if page else None),
        output,
        page=lambda: render_html(data),
    )
    if data.check_ok is False:
        raise typer.Exit(ExitCode.VIOLATION)
