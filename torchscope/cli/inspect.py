"""``torchscope summary``, ``activations``, ``stats`` and ``grads``: inside the forward and backward passes."""

from __future__ import annotations

from typing import Annotated

import typer

from torchscope._parsing import split_patterns
from torchscope.cli._app import app
from torchscope.cli._common import check_device, load_cli_model, load_inputs
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import DEFAULT_SEED, DepthOpt, ModeOpt, ModulesOpt, SeedOpt
from torchscope.cli._output import command_inputs, emit
from torchscope.cli._sets import Defaults, FreezeSet, InputSet, LoadSet, OutputSet, takes_sets


def _check_mode(mode: str) -> None:
    from torchscope.errors import SpecError

    if mode not in ("train", "eval"):
        raise SpecError(f"--mode {mode!r} must be train or eval")


@app.command("summary")
@takes_sets
def summary_command(
    *,
    load: Annotated[LoadSet, Defaults(device="meta")],
    inputs: InputSet,
    mode: ModeOpt = "eval",
    depth: DepthOpt = None,
    uncounted: Annotated[
        bool, typer.Option("--uncounted", help="Add a column naming the ops that have no FLOP formula.")
    ] = False,
    require_exact: Annotated[
        bool,
        typer.Option(
            "--require-exact", help="Exit 1 when the mult-adds are a lower bound (an op has no FLOP formula)."
        ),
    ] = False,
    frozen: FreezeSet,
    out: OutputSet,
) -> None:
    """Shapes, params and exact mult-adds (FLOPs = 2 x MACs) of every module call.

    On meta (the default) nothing is allocated; if the model needs values (data-dependent code), the
    CPU is tried. A failed forward prints no table: the error names the module it stopped in.
    """
    from torchscope._summary import SummaryForwardError, summary
    from torchscope.render.summary import render_summary
    from torchscope.render.tree import check_display_options

    output = out.output(f"torchscope summary {load.model}", command_inputs(load.model, load.weights))
    _check_mode(mode)
    check_display_options(depth)
    device = check_device(load.device)
    sizes = load_inputs(load, inputs, device=device)
    try:
        loaded = load_cli_model(load, frozen, seed=inputs.seed, device=device)
        data = summary(loaded, input_size=sizes, dtype=inputs.dtype, mode=mode, verbose=0)  # type: ignore[arg-type]
    except SummaryForwardError:
        if device != "meta":
            raise
        # data-dependent code (detection models) cannot run without values: use the CPU
        sizes = load_inputs(load, inputs, device="cpu")
        loaded = load_cli_model(load, frozen, seed=inputs.seed, device="cpu")
        data = summary(loaded, input_size=sizes, dtype=inputs.dtype, mode=mode, verbose=0)  # type: ignore[arg-type]
    emit(data, lambda: render_summary(data, depth=depth, show_uncounted=uncounted), output)
    if require_exact and data.mult_adds_lower_bound:
        typer.echo(
            f"--require-exact: mult-adds is a lower bound, no FLOP formula for {', '.join(data.uncounted_ops)}",
            err=True,
        )
        raise typer.Exit(ExitCode.VIOLATION)


@app.command("activations")
@takes_sets
def activations_command(
    *,
    load: Annotated[LoadSet, Defaults(device="cpu")],
    inputs: InputSet,
    modules: ModulesOpt = None,
    grads: Annotated[
        bool, typer.Option("--grads", help="Also run backward and record output-gradient stats.")
    ] = False,
    timing: Annotated[
        bool, typer.Option("--timing", help="Per-module wall time (synchronises the device).")
    ] = False,
    mode: ModeOpt = "eval",
    out: OutputSet,
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

    output = out.output(f"torchscope activations {load.model}", command_inputs(load.model, load.weights))
    _check_mode(mode)
    patterns = split_patterns(modules, option="--modules") or None
    sizes = load_inputs(load, inputs)
    loaded = uncompiled(load_cli_model(load, seed=inputs.seed))  # Dynamo would trace none of our hooks
    with preserved(loaded):
        loaded.train(mode == "train")
        args, kw = prepare_call(loaded, sizes, dtype=inputs.dtype)
        with torch.set_grad_enabled(grads), record(loaded, patterns, grads=grads, timing=timing) as rec:
            with CallTracker(loaded) as tracker:
                try:
                    result = loaded(*args, **kw)
                except Exception as exc:  # the same one line as summary and grads give
                    raise ForwardError(tracker.failure_message(exc)) from exc
            if grads:
                compute_loss(result, "auto")[0].backward()
        data = rec.report()
    if data.checked == 0:
        raise TorchscopeError(f"activations checked nothing: {data.why_unchecked()}")
    emit(data, lambda: render_activations(data, std_bar=None), output)


@app.command("stats")
@takes_sets
def stats_command(
    *,
    load: Annotated[LoadSet, Defaults(device="cpu")],
    seed: SeedOpt = DEFAULT_SEED,
    frozen: FreezeSet,
    out: OutputSet,
) -> None:
    """Per-parameter norm, mean, std, min, max, zeros and NaN/Inf (e.g. of a fine-tuned state_dict)."""
    from torchscope._stats import param_stats
    from torchscope.errors import TorchscopeError
    from torchscope.render.stats import render_param_stats

    output = out.output(f"torchscope stats {load.model}", command_inputs(load.model, load.weights))
    data = param_stats(load_cli_model(load, frozen, seed=seed))
    if data.checked == 0:
        raise TorchscopeError(f"stats checked nothing: {data.nothing_checked}")
    emit(data, lambda: render_param_stats(data), output)


@app.command("grads")
@takes_sets
def grads_command(
    *,
    load: Annotated[LoadSet, Defaults(device="cpu")],
    inputs: InputSet,
    loss: Annotated[
        str,
        typer.Option("--loss", help="auto (cross-entropy for logits, else sum), ce or sum.", metavar="LOSS"),
    ] = "auto",
    mode: ModeOpt = "train",
    frozen: FreezeSet,
    out: OutputSet,
) -> None:
    """One forward+backward on a random batch: per-layer grad norms, unused params, vanishing/exploding layers."""
    from torchscope._grads import grad_report
    from torchscope.errors import TorchscopeError
    from torchscope.render.stats import render_grads

    output = out.output(f"torchscope grads {load.model}", command_inputs(load.model, load.weights))
    _check_mode(mode)
    sizes = load_inputs(load, inputs)
    loaded = load_cli_model(load, frozen, seed=inputs.seed)
    data = grad_report(loaded, input_size=sizes, loss=loss, mode=mode, dtype=inputs.dtype)  # type: ignore[arg-type]
    if data.checked == 0:
        raise TorchscopeError(f"grads checked nothing: {data.nothing_checked}")
    emit(data, lambda: render_grads(data), output)
