"""``torchscope summary``, ``activations``, ``stats`` and ``grads``: inside the forward and backward passes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from torchscope._parsing import split_patterns
from torchscope.cli._app import app
from torchscope.cli._common import check_device, input_sizes, load_cli_model
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import (
    DEFAULT_SEED,
    ArgOpt,
    DepthOpt,
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    FreezeBackboneOpt,
    FreezeOpt,
    HfConfigOpt,
    HtmlOpt,
    InputSizeOpt,
    JsonOpt,
    ModelArg,
    ModeOpt,
    NoColorOpt,
    NoVerifyOpt,
    NumLabelsOpt,
    PretrainedOpt,
    SeedOpt,
    SvgOpt,
    TaskOpt,
    UnfreezeOpt,
    UnsafeLoadOpt,
    WeightsOpt,
)
from torchscope.cli._output import Output, command_inputs, emit


def _check_mode(mode: str) -> None:
    from torchscope.errors import SpecError

    if mode not in ("train", "eval"):
        raise SpecError(f"--mode {mode!r} must be train or eval")


@app.command("summary")
def summary_command(
    model: ModelArg,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    mode: ModeOpt = "eval",
    device: DeviceOpt = "meta",
    seed: SeedOpt = DEFAULT_SEED,
    depth: DepthOpt = None,
    uncounted: Annotated[
        bool, typer.Option("--uncounted", help="Add a column naming the ops that have no FLOP formula.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit 1 when the mult-adds are a lower bound (an op has no FLOP formula)."),
    ] = False,
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
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Shapes, params and exact mult-adds (FLOPs = 2 x MACs) of every module call.

    On meta (the default) nothing is allocated; if the model needs values (data-dependent code), the
    CPU is tried. A failed forward prints no table: the error names the module it stopped in.
    """
    from torchscope._summary import SummaryForwardError, summary
    from torchscope.render.summary import render_summary
    from torchscope.render.tree import check_display_options

    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force,
        title=f"torchscope summary {model}", inputs=command_inputs(model, weights),
    )  # fmt: skip
    _check_mode(mode)
    check_display_options(depth)
    device = check_device(device)
    sizes = input_sizes(model, input_size, device=device, dtype=dtype)
    options: dict[str, Any] = dict(
        weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load, verify=not no_verify,
        config=config, task=task, num_labels=num_labels, seed=seed,
        freeze=freeze, unfreeze=unfreeze, freeze_backbone=freeze_backbone,
    )  # fmt: skip
    try:
        data = summary(
            load_cli_model(model, device=device, **options), input_size=sizes, dtype=dtype, mode=mode
        )  # type: ignore[arg-type]
    except SummaryForwardError:
        if device != "meta":
            raise
        # data-dependent code (detection models) cannot run without values: use the CPU
        sizes = input_sizes(model, input_size, device="cpu", dtype=dtype)
        data = summary(
            load_cli_model(model, device="cpu", **options), input_size=sizes, dtype=dtype, mode=mode
        )  # type: ignore[arg-type]
    emit(data, lambda: render_summary(data, depth=depth, show_uncounted=uncounted), out)
    if strict and data.mult_adds_lower_bound:
        typer.echo(
            f"--strict: mult-adds is a lower bound, no FLOP formula for {', '.join(data.uncounted_ops)}", err=True
        )
        raise typer.Exit(ExitCode.VIOLATION)


@app.command("activations")
def activations_command(
    model: ModelArg,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    modules: Annotated[
        str | None,
        typer.Option(
            "--modules",
            help="Comma-separated glob patterns of modules to record (default: all).",
            metavar="GLOBS",
        ),
    ] = None,
    grads: Annotated[
        bool, typer.Option("--grads", help="Also run backward and record output-gradient stats.")
    ] = False,
    timing: Annotated[
        bool, typer.Option("--timing", help="Per-module wall time (synchronises the device).")
    ] = False,
    mode: ModeOpt = "eval",
    device: DeviceOpt = "cpu",
    seed: SeedOpt = DEFAULT_SEED,
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    no_verify: NoVerifyOpt = False,
    config: HfConfigOpt = None,
    task: TaskOpt = None,
    num_labels: NumLabelsOpt = None,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Activation statistics per module call on a random batch; NaN/Inf, dead ReLUs, exploding std flagged."""
    import torch

    from torchscope._compiled import uncompiled
    from torchscope._grads import compute_loss
    from torchscope._inputs import prepare_call
    from torchscope._record import record
    from torchscope._state import preserved
    from torchscope._summary import CallTracker
    from torchscope.errors import ForwardError, TorchscopeError
    from torchscope.render.activations import render_activations

    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force,
        title=f"torchscope activations {model}", inputs=command_inputs(model, weights),
    )  # fmt: skip
    _check_mode(mode)
    patterns = split_patterns(modules, option="--modules") or None
    sizes = input_sizes(model, input_size, device=device, dtype=dtype)
    loaded = load_cli_model(
        model, device=device, weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load,
        verify=not no_verify, seed=seed,
        config=config, task=task, num_labels=num_labels,
    )  # fmt: skip
    loaded = uncompiled(loaded)  # a compiled model's eager modules: Dynamo traces none of our hooks
    with preserved(loaded):
        loaded.train(mode == "train")
        args, kw = prepare_call(loaded, sizes, dtype=dtype)
        with torch.set_grad_enabled(grads), record(loaded, patterns, grads=grads, timing=timing) as rec:
            with CallTracker(loaded) as tracker:
                try:
                    output = loaded(*args, **kw)
                except Exception as exc:  # the same one line as summary and grads give
                    raise ForwardError(tracker.failure_message(exc)) from exc
            if grads:
                compute_loss(output, "auto")[0].backward()
        data = rec.report()
    if data.checked == 0:
        raise TorchscopeError(f"activations checked nothing: {data.why_unchecked()}")
    emit(data, lambda: render_activations(data, std_bar=None), out)


@app.command("stats")
def stats_command(
    model: ModelArg,
    device: DeviceOpt = "cpu",
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
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Per-parameter norm, mean, std, min, max, zeros and NaN/Inf (e.g. of a fine-tuned state_dict)."""
    from torchscope._stats import param_stats
    from torchscope.errors import TorchscopeError
    from torchscope.render.stats import render_param_stats

    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force,
        title=f"torchscope stats {model}", inputs=command_inputs(model, weights),
    )  # fmt: skip
    loaded = load_cli_model(
        model, device=device, weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load,
        verify=not no_verify, seed=seed,
        config=config, task=task, num_labels=num_labels,
        freeze=freeze, unfreeze=unfreeze, freeze_backbone=freeze_backbone,
    )  # fmt: skip
    data = param_stats(loaded)
    if data.checked == 0:
        raise TorchscopeError(f"stats checked nothing: {data.nothing_checked}")
    emit(data, lambda: render_param_stats(data), out)


@app.command("grads")
def grads_command(
    model: ModelArg,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    loss: Annotated[
        str,
        typer.Option("--loss", help="auto (cross-entropy for logits, else sum), ce or sum.", metavar="LOSS"),
    ] = "auto",
    mode: ModeOpt = "train",
    device: DeviceOpt = "cpu",
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
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """One forward+backward on a random batch: per-layer grad norms, unused params, vanishing/exploding layers."""
    from torchscope._grads import grad_report
    from torchscope.errors import TorchscopeError
    from torchscope.render.stats import render_grads

    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force,
        title=f"torchscope grads {model}", inputs=command_inputs(model, weights),
    )  # fmt: skip
    _check_mode(mode)
    sizes = input_sizes(model, input_size, device=device, dtype=dtype)
    loaded = load_cli_model(
        model, device=device, weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load,
        verify=not no_verify, seed=seed,
        config=config, task=task, num_labels=num_labels,
        freeze=freeze, unfreeze=unfreeze, freeze_backbone=freeze_backbone,
    )  # fmt: skip
    data = grad_report(loaded, input_size=sizes, loss=loss, mode=mode, dtype=dtype)  # type: ignore[arg-type]
    if data.checked == 0:
        raise TorchscopeError(f"grads checked nothing: {data.nothing_checked}")
    emit(data, lambda: render_grads(data), out)
