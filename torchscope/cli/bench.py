"""``torchscope bench``: the reference fine-tune benchmark, and ``--compare`` of two saved runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from torchscope.cli._app import app
from torchscope.cli._common import HtmlOpt, NoColorOpt, Output, SvgOpt, console, emit, handle_errors
from torchscope.errors import TorchscopeError

if TYPE_CHECKING:
    from torchscope._bench.schema import BenchResult


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise TorchscopeError(f"--batch-size {text!r} must be a positive integer or 'auto'") from None


def _read_result(path: Path) -> BenchResult:
    # the schema module imports no torch: --compare renders saved files without it
    from torchscope._bench.schema import BenchResult

    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise TorchscopeError(
            f"cannot read {str(path)!r} ({exc.strerror}); give a file written by bench --json"
        ) from None
    except json.JSONDecodeError as exc:
        raise TorchscopeError(
            f"{str(path)!r} is not JSON ({exc.msg}); give a file written by bench --json"
        ) from None
    return BenchResult.from_dict(data)


@app.command("bench")
@handle_errors
def bench_command(
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Model spec the loader resolves (torchvision name, timm:NAME, ...)."
        ),
    ] = "resnet50",
    mode: Annotated[
        str, typer.Option(help="frozen (backbone frozen, its norm layers in eval), full, or both.")
    ] = "both",
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N; default: the best device found.")
    ] = None,
    batch_size: Annotated[
        str, typer.Option("--batch-size", "-b", help="Images per step (per process), or 'auto'.")
    ] = "32",
    max_batch_size: Annotated[
        int | None, typer.Option(help="Upper bound of --batch-size auto (default 1024 on GPU, 64 on CPU).")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Square input size; default: the model's own (224, 299 for inception).")
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(help="Classes of the new head (default 10, or the ImageFolder's).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Steps per timed window.")] = 10,
    windows: Annotated[
        int, typer.Option(help="Timed windows per loop (median and spread are taken over them).")
    ] = 5,
    warmup: Annotated[
        int, typer.Option(help="Minimum warm-up steps (more run until step times settle).")
    ] = 3,
    optimizer: Annotated[str, typer.Option(help="sgd (momentum 0.9) or adamw.")] = "sgd",
    lr: Annotated[
        float | None, typer.Option(help="Learning rate (default 0.01 for sgd, 0.001 for adamw).")
    ] = None,
    amp: Annotated[
        str, typer.Option(help="Autocast dtype: off, bf16, fp16 (fp16 uses a GradScaler).")
    ] = "off",
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="NHWC memory format for model and inputs.")
    ] = False,
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model; compile time is reported apart.")
    ] = False,
    compile_mode: Annotated[str, typer.Option(help="torch.compile mode.")] = "default",
    data: Annotated[
        Path | None,
        typer.Option(help="ImageFolder root: time the real input pipeline instead of synthetic tensors."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="DataLoader workers with --data (default min(4, CPUs)).")
    ] = None,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline/--no-baseline", help="Interleave a plain hand-written loop and report the ratio."
        ),
    ] = True,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Run the freeze invariants on one more step.")
    ] = True,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="Render two --json files side by side with ratios; runs nothing."),
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json", help="Write every raw window time and the summary to PATH ('-' for stdout only)."
        ),
    ] = None,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
) -> None:
    """Time a reference fine-tune (frozen backbone vs full) against a plain loop; MFU, memory, checks."""
    from torchscope.render.bench import ProgressBar, render_bench, render_compare

    if compare is not None:
        a, b = (_read_result(p) for p in compare)
        out = Output(html=html, svg=svg, no_color=no_color, title="torchscope bench --compare")
        emit(None, lambda: render_compare(a, b, (compare[0].name, compare[1].name)), out)
        return
    from torchscope._bench.run import run_bench
    from torchscope._bench.schema import BenchConfig, modes_of

    rank0 = os.environ.get("RANK", "0") == "0"
    config = BenchConfig(
        model=model, modes=modes_of(mode), device=device, batch_size=_batch_size(batch_size),
        max_batch_size=max_batch_size, image_size=image_size, num_classes=num_classes, steps=steps,
        windows=windows, warmup=warmup, optimizer=optimizer, lr=lr, amp=amp, channels_last=channels_last,
        compile=compile, compile_mode=compile_mode, data=None if data is None else str(data),
        workers=workers, baseline=baseline, check=check,
    )  # fmt: skip
    if progress and rank0:
        with ProgressBar(console(no_color, stderr=True)) as bar:
            result = run_bench(config, progress=bar)
    else:
        result = run_bench(config)
    if not rank0:  # every rank ran; rank 0 speaks for all of them
        return
    if json_path is not None and json_path != "-":
        try:
            Path(json_path).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise TorchscopeError(
                f"cannot write --json {json_path!r} ({exc.strerror}); pick a writable path"
            ) from None
    emit(
        result,
        lambda: render_bench(result),
        Output(json=json_path == "-", html=html, svg=svg, no_color=no_color),
    )
    if not result.ok:
        raise typer.Exit(1)
