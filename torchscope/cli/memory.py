"""``torchscope memory``: the peak memory of a training step, predicted without a GPU; ``--fit``."""

from __future__ import annotations

from typing import Annotated

import typer

from torchscope._checkparts.config import DEFAULT_STEP
from torchscope.cli._app import app
from torchscope.cli._common import load_cli_model
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import (
    BATCH_SIZE_HELP,
    AmpOpt,
    ChannelsLastOpt,
    ModeOpt,
    MomentumOpt,
    OptimizerOpt,
    ProgressOpt,
    StepsOpt,
)
from torchscope.cli._output import command_inputs, emit, progress_shown
from torchscope.cli._sets import Defaults, FreezeSet, InputSet, LoadSet, OutputSet, takes_sets
from torchscope.errors import TorchscopeError

SGD_MOMENTUM_DEPRECATION = (
    "warning: `--optimizer sgd-momentum` is deprecated and goes in the next release; write `--optimizer sgd` "
    "(SGD has momentum 0.9 unless --momentum 0, as in every command)"
)
FitOpt = Annotated[
    str | None,
    typer.Option(
        "--fit",
        help="Search the largest batch size that fits this much memory: a size with its unit (24GiB, 40GB) or a GPU "
        "(t4, v100-16gb, l4, rtx3090, rtx4090, a100-40gb, a100-80gb, h100, h200, ...; see docs/memory.md). "
        "Keeps 1 GiB and then 10% free for the CUDA context and fragmentation. --input-size is then one "
        "sample's shape.",
        metavar="SIZE|GPU",
    ),
]


@app.command("memory")
@takes_sets
def memory_command(
    *,
    load: Annotated[LoadSet, Defaults(device="cuda")],
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", help=BATCH_SIZE_HELP, metavar="N", min=1)
    ] = None,
    inputs: InputSet,
    frozen: FreezeSet,
    optimizer: OptimizerOpt = "adamw",
    momentum: MomentumOpt = DEFAULT_STEP.momentum,
    amp: AmpOpt = "off",
    channels_last: ChannelsLastOpt = False,
    grad_checkpointing: Annotated[
        bool,
        typer.Option(
            "--grad-checkpointing", help="The model's own gradient checkpointing (HF, timm, DenseNet)."
        ),
    ] = False,
    mode: ModeOpt = "train",
    steps: StepsOpt = 2,
    fit: FitOpt = None,
    out: OutputSet,
    progress: ProgressOpt = True,
) -> None:
    """Predict the peak memory of a training step under fake tensors: nothing is allocated, no GPU needed.

    --device is the device predicted for (cuda: 512-byte allocator blocks; cpu: exact bytes). A float
    --dtype (bf16) trains in that dtype, weights and inputs; an integer one (long) makes token inputs.
    --optimizer sgd keeps a momentum buffer unless --momentum 0. Exits 1 when --fit finds that
    nothing fits (the weights alone, or batch size 1).
    """
    from torchscope._memory.estimate import memory_of_spec
    from torchscope.render.memory import render_memory

    output = out.output(f"torchscope memory {load.model}", command_inputs(load.model, load.weights))
    if load.device not in ("cuda", "cpu"):
        raise TorchscopeError(f"--device {load.device!r}: memory predicts for cuda or cpu")
    loaded = load_cli_model(load, frozen, seed=inputs.seed, device="meta")
    with progress_shown(progress and fit is not None and not out.json, out.no_color) as bar:
        report = memory_of_spec(
            loaded, load.model, input_size=inputs.input_size, batch_size=batch_size, dtype=inputs.dtype,
            device=load.device, optimizer=memory_optimizer(optimizer, momentum), amp=amp,
            channels_last=channels_last, grad_checkpointing=grad_checkpointing, mode=mode, steps=steps, fit=fit,
            progress=bar,
        )  # fmt: skip
    emit(report, lambda: render_memory(report), output)
    if report.fit is not None and report.fit.batch_size == 0:
        raise typer.Exit(ExitCode.VIOLATION)


def memory_optimizer(name: str, momentum: float) -> str:
    """The memory model's optimizer name for ``--optimizer``/``--momentum``: SGD keeps a momentum buffer
    unless ``--momentum 0`` (the old ``sgd-momentum`` still works for one release, with a warning)."""
    if name == "sgd-momentum":
        typer.echo(SGD_MOMENTUM_DEPRECATION, err=True)
        return "sgd-momentum"
    if name == "sgd":
        return "sgd-momentum" if momentum else "sgd"
    return name
