"""``torchscope summary``, ``activations``, ``stats`` and ``grads``: inside the forward and backward passes."""

from __future__ import annotations

from typing import Annotated, Any

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

InputSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--input-size",
        help="Input shape, e.g. 1,3,224,224; several inputs: 1,3,8,8;1,10. Default: the model's crop size.",
    ),
]
DtypeOpt = Annotated[
    str | None, typer.Option("--dtype", help="dtype of the synthetic inputs (float32, bf16, int64...).")
]
ModeOpt = Annotated[str, typer.Option("--mode", help="train or eval.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]


def _sizes(model: str, input_size: str | None) -> list[tuple[int, ...]]:
    from torchscope._inputs import parse_input_size
    from torchscope._loader import default_input_size

    return parse_input_size(input_size) if input_size else [default_input_size(model)]


def _load(model: str, device: str, **options: Any):  # type: ignore[no-untyped-def]
    return load_cli_model(model, device=device, **options)


@app.command("summary")
@handle_errors
def summary_command(
    model: ModelArg,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    mode: ModeOpt = "eval",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="meta (default: shapes and FLOPs need no values; cpu is tried if meta fails), cpu, cuda.",
        ),
    ] = "meta",
    depth: Annotated[
        int | None, typer.Option("--depth", help="Show module calls down to this depth.")
    ] = None,
    uncounted: Annotated[
        bool, typer.Option("--uncounted", help="Add a column naming the ops that have no FLOP formula.")
    ] = False,
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Shapes, params and exact mult-adds (FLOPs = 2 x MACs) of every module call."""
    from torchscope._summary import SummaryForwardError, summary
    from torchscope.render.summary import render_summary

    sizes = _sizes(model, input_size)
    options = dict(
        weights=weights,
        args=arg,
        pretrained=pretrained,
        unsafe_load=unsafe_load,
        freeze=freeze,
        unfreeze=unfreeze,
        freeze_backbone=freeze_backbone,
    )
    out = Output(json=json, html=html, svg=svg, no_color=no_color, title=f"torchscope summary {model}")
    loaded = _load(model, device, **options)
    try:
        try:
            data = summary(loaded, input_size=sizes, dtype=dtype, mode=mode)  # type: ignore[arg-type]
        except SummaryForwardError:
            if device != "meta":
                raise
            # data-dependent code (detection models) cannot run without values: use the CPU
            data = summary(_load(model, "cpu", **options), input_size=sizes, dtype=dtype, mode=mode)  # type: ignore[arg-type]
    except SummaryForwardError as exc:
        partial = exc.partial
        emit(
            partial, lambda: render_summary(partial, depth=depth, show_uncounted=uncounted), out
        )  # the partial summary, then the error
        raise
    emit(data, lambda: render_summary(data, depth=depth, show_uncounted=uncounted), out)


@app.command("activations")
@handle_errors
def activations_command(
    model: ModelArg,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    modules: Annotated[
        str | None,
        typer.Option("--modules", help="Comma-separated glob patterns of modules to record (default: all)."),
    ] = None,
    grads: Annotated[
        bool, typer.Option("--grads", help="Also run backward and record output-gradient stats.")
    ] = False,
    timing: Annotated[
        bool, typer.Option("--timing", help="Per-module wall time (synchronises the device).")
    ] = False,
    mode: ModeOpt = "eval",
    device: DeviceOpt = "cpu",
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Activation statistics per module call on a random batch; NaN/Inf, dead ReLUs, exploding std flagged."""
    import torch

    from torchscope._grads import _compute_loss
    from torchscope._inputs import prepare_call
    from torchscope._record import record
    from torchscope._state import preserved
    from torchscope.errors import SpecError
    from torchscope.render.activations import render_activations

    if mode not in ("train", "eval"):
        raise SpecError(f"--mode {mode!r} must be train or eval")
    sizes = _sizes(model, input_size)
    loaded = _load(model, device, weights=weights, args=arg, pretrained=pretrained, unsafe_load=unsafe_load)
    patterns = split_patterns(modules) or None
    with preserved(loaded):
        loaded.train(mode == "train")
        args, kw = prepare_call(loaded, sizes, dtype=dtype)
        with torch.set_grad_enabled(grads), record(loaded, patterns, grads=grads, timing=timing) as rec:
            output = loaded(*args, **kw)
            if grads:
                _compute_loss(output, "auto")[0].backward()
        data = rec.report()
    emit(
        data,
        lambda: render_activations(data, std_bar=None),
        Output(json=json, html=html, svg=svg, no_color=no_color, title=f"torchscope activations {model}"),
    )


@app.command("stats")
@handle_errors
def stats_command(
    model: ModelArg,
    device: DeviceOpt = "cpu",
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """Per-parameter norm, mean, std, min, max, zeros and NaN/Inf (e.g. of a fine-tuned state_dict)."""
    from torchscope._stats import param_stats
    from torchscope.render.stats import render_param_stats

    loaded = _load(
        model,
        device,
        weights=weights,
        args=arg,
        pretrained=pretrained,
        unsafe_load=unsafe_load,
        freeze=freeze,
        unfreeze=unfreeze,
        freeze_backbone=freeze_backbone,
    )
    data = param_stats(loaded)
    emit(
        data,
        lambda: render_param_stats(data),
        Output(json=json, html=html, svg=svg, no_color=no_color, title=f"torchscope stats {model}"),
    )


@app.command("grads")
@handle_errors
def grads_command(
    model: ModelArg,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    loss: Annotated[
        str, typer.Option("--loss", help="auto (cross-entropy for logits, else sum), ce or sum.")
    ] = "auto",
    mode: ModeOpt = "train",
    device: DeviceOpt = "cpu",
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
) -> None:
    """One forward+backward on a random batch: per-layer grad norms, unused params, vanishing/exploding layers."""
    from torchscope._grads import grad_report
    from torchscope.render.stats import render_grads

    sizes = _sizes(model, input_size)
    loaded = _load(
        model,
        device,
        weights=weights,
        args=arg,
        pretrained=pretrained,
        unsafe_load=unsafe_load,
        freeze=freeze,
        unfreeze=unfreeze,
        freeze_backbone=freeze_backbone,
    )
    data = grad_report(loaded, input_size=sizes, loss=loss, mode=mode, dtype=dtype)  # type: ignore[arg-type]
    emit(
        data,
        lambda: render_grads(data),
        Output(json=json, html=html, svg=svg, no_color=no_color, title=f"torchscope grads {model}"),
    )
