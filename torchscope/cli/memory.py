"""``torchscope memory``: the peak memory of a training step, predicted without a GPU; ``--fit``."""

from __future__ import annotations

from typing import Annotated

import typer

from torchscope.cli._app import app
from torchscope.cli._common import load_cli_model
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import (
    DEFAULT_SEED,
    AmpOpt,
    ArgOpt,
    ChannelsLastOpt,
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
    OptimizerOpt,
    SeedOpt,
    StepsOpt,
    SvgOpt,
    TaskOpt,
    UnfreezeOpt,
    UnsafeLoadOpt,
    WeightsOpt,
)
from torchscope.cli._output import Output, command_inputs, emit
from torchscope.errors import TorchscopeError

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
def memory_command(
    model: ModelArg,
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    unsafe_load: UnsafeLoadOpt = False,
    no_verify: NoVerifyOpt = False,
    config: HfConfigOpt = None,
    task: TaskOpt = None,
    num_labels: NumLabelsOpt = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            "-b",
            help="Batch size; --input-size is then one sample's shape (3,224,224), as it is with --fit.",
            min=1,
        ),
    ] = None,
    input_size: InputSizeOpt = None,
    dtype: DtypeOpt = None,
    seed: SeedOpt = DEFAULT_SEED,
    device: DeviceOpt = "cuda",
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    optimizer: OptimizerOpt = "adamw",
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
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Predict the peak memory of a training step under fake tensors: nothing is allocated, no GPU needed.

    --device is the device predicted for (cuda: 512-byte allocator blocks; cpu: exact bytes). A float
    --dtype (bf16) trains in that dtype, weights and inputs; an integer one (long) makes token inputs.
    --optimizer: sgd (no momentum), sgd-momentum (0.9), adam or adamw. Exits 1 when --fit finds that
    nothing fits (the weights alone, or batch size 1).
    """
    from torchscope._memory.estimate import memory_of_spec
    from torchscope.render.memory import render_memory

    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force,
        title=f"torchscope memory {model}", inputs=command_inputs(model, weights),
    )  # fmt: skip
    if device not in ("cuda", "cpu"):
        raise TorchscopeError(f"--device {device!r}: memory predicts for cuda or cpu")
    loaded = load_cli_model(
        model, weights=weights, args=arg, device="meta", unsafe_load=unsafe_load, verify=not no_verify, seed=seed,
        freeze=freeze, unfreeze=unfreeze, freeze_backbone=freeze_backbone, config=config, task=task, num_labels=num_labels,
    )  # fmt: skip
    report = memory_of_spec(
        loaded, model, input_size=input_size, batch_size=batch_size, dtype=dtype, device=device,
        optimizer=optimizer, amp=amp, channels_last=channels_last, grad_checkpointing=grad_checkpointing,
        mode=mode, steps=steps, fit=fit,
    )  # fmt: skip
    emit(report, lambda: render_memory(report), out)
    if report.fit is not None and report.fit.batch_size == 0:
        raise typer.Exit(ExitCode.VIOLATION)
