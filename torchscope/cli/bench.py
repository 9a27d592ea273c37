"""``torchscope bench``: the reference fine-tune benchmark, and ``--compare`` of two saved runs."""

from __future__ import annotations

import dataclasses
import json as jsonlib
import os
from pathlib import Path
from typing import Annotated

import typer

from torchscope._bench.schema import SCHEMA, BenchConfig, BenchResult, modes_of
from torchscope._parsing import parse_input_size, parse_kwargs
from torchscope.cli._app import app
from torchscope.cli._common import check_seed
from torchscope.cli._exit import ExitCode
from torchscope.cli._options import (
    BATCH_SIZE_HELP,
    AmpOpt,
    ChannelsLastOpt,
    CheckOpt,
    DeviceOpt,
    HfConfigOpt,
    NumLabelsOpt,
    ProgressOpt,
    TaskOpt,
)
from torchscope.cli._output import (
    OutputPathError,
    check_output_paths,
    command_inputs,
    emit,
    progress_shown,
    to_json,
    write_files,
)
from torchscope.cli._reads import unrecorded
from torchscope.cli._sets import InputSet, OutputSet, takes_sets
from torchscope.errors import TorchscopeError


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise TorchscopeError(f"--batch-size {text!r} must be a positive integer or 'auto'") from None


#: --input-dtype names of the token dtypes bench takes.
_TOKEN_DTYPES = {"long": "int64", "int64": "int64", "torch.int64": "int64", "int": "int32", "int32": "int32"}


def _tokens(
    text: str | None, dtype: str | None, batch_size: str | None
) -> tuple[int | str, int | None, str]:
    """(batch size, sequence length or None, token dtype) from ``--tokens``/``--dtype``/``--batch-size``.

    As everywhere: without ``--batch-size``, ``--tokens`` is the whole batch (``BATCHxLENGTH``); with
    it, one sample (``LENGTH``).
    """
    token_dtype = "int64"
    if dtype is not None:
        if dtype.lower() not in _TOKEN_DTYPES:
            raise TorchscopeError(
                f"--dtype {dtype!r}: bench feeds float images itself and token ids as long or int32; use long"
            )
        token_dtype = _TOKEN_DTYPES[dtype.lower()]
    if text is None:
        return _batch_size(batch_size or "32"), None, token_dtype
    shapes = parse_input_size(text, option="--tokens")
    if batch_size is not None:
        if len(shapes) != 1 or len(shapes[0]) != 1:
            raise TorchscopeError(
                f"--tokens {text!r} with --batch-size {batch_size}: --tokens is then one sample's LENGTH, "
                f"e.g. --tokens 128 (or drop --batch-size and give BATCHxLENGTH)"
            )
        return _batch_size(batch_size), shapes[0][0], token_dtype
    if len(shapes) != 1 or len(shapes[0]) != 2:
        raise TorchscopeError(
            f"--tokens {text!r} must be BATCHxLENGTH, e.g. 4x128 (or LENGTH with --batch-size); "
            "image models take --batch-size and --image-size"
        )
    return shapes[0][0], shapes[0][1], token_dtype


def _read_result(path: Path) -> BenchResult:
    # the schema module imports no torch: --compare renders saved files without it
    try:
        data = jsonlib.loads(path.read_text())
    except OSError as exc:
        raise TorchscopeError(
            f"cannot read {str(path)!r} ({exc.strerror}); give a file written by bench --output"
        ) from None
    except jsonlib.JSONDecodeError as exc:
        raise TorchscopeError(
            f"{str(path)!r} is not JSON ({exc.msg}); give a file written by bench --output"
        ) from None
    return BenchResult.from_dict(data)


def _is_bench_result(path: Path) -> bool:
    """Whether ``path`` holds a bench result (ours to overwrite): the schema line opens the file."""
    try:
        with unrecorded(), path.open("rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return f'"schema": "{SCHEMA}"'.encode() in head


def _json_options(json: bool, extra: list[str], output: Path | None) -> tuple[bool, Path | None]:
    """(JSON to stdout, JSON file) from ``--json``, ``--output`` and the words left over.

    ``--json`` is a flag, as in every command; the old ``--json PATH`` (the PATH is then a word left
    over) still works for one release, with a deprecation line on stderr, and ``--json -`` is the flag.
    """
    if not extra:
        return json, output
    if not json or len(extra) > 1:
        raise TorchscopeError(f"unexpected argument {extra[-1]!r}; bench takes options only (see --help)")
    if extra[0] == "-":
        return True, output
    if output is not None:
        raise TorchscopeError(f"--json {extra[0]!r} and --output both name a file; keep --output only")
    typer.echo(
        f"warning: `--json PATH` is deprecated and goes in the next release; write `--output {extra[0]}` "
        "(and `--json` alone for JSON on stdout)",
        err=True,
    )
    return False, Path(extra[0])


def _check_outputs(
    output: Path | None, html: Path | None, svg: Path | None, inputs: tuple[Path, ...], force: bool
) -> None:
    """Every output path is usable, before any work: ``--output`` under the same rules as ``--console-html``/``--svg``."""
    if output is None:
        return
    for opt, other in (("--console-html", html), ("--svg", svg)):
        if other is not None and output.resolve() == other.resolve():
            raise OutputPathError(f"--output {str(output)!r} is also {opt}; give each output its own file")
    # a bench result (an earlier run's --output) is ours to overwrite, like a page we wrote
    check_output_paths({"--output": output}, inputs, force=force or _is_bench_result(output))


# extra args: the PATH of the deprecated `--json PATH`, now that --json is a flag
@app.command("bench", context_settings={"allow_extra_args": True})
@takes_sets
def bench_command(
    ctx: typer.Context,
    *,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model spec the loader resolves (torchvision name, timm:NAME, hf:MODEL_TYPE or hf:DIR: "
            "a language model, fed token ids).",
            metavar="MODEL",
        ),
    ] = "resnet50",
    finetune: Annotated[
        str,
        typer.Option(
            "--finetune",
            help="Which fine-tune to time: frozen (backbone frozen, its norm layers in eval), full, or both.",
            metavar="frozen|full|both",
        ),
    ] = "both",
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        str | None,
        typer.Option(
            "--batch-size", "-b", help=f"{BATCH_SIZE_HELP} bench: or auto, the largest that fits. [default: 32]",
            metavar="N|auto",
        ),
    ] = None,
    synthetic: InputSet,
    config: HfConfigOpt = None,
    task: TaskOpt = None,
    num_labels: NumLabelsOpt = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(
            help="Upper bound of --batch-size auto (default 1024 on GPU, 64 on CPU).", metavar="N"
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(help="Square input size; default: the model's own (224, 299 for inception).", metavar="PX"),
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option(help="Classes of the new head (default 10, or the ImageFolder's).", metavar="N")
    ] = None,
    window_steps: Annotated[int, typer.Option("--window-steps", help="Steps per timed window.", metavar="N")] = 10,
    windows: Annotated[
        int, typer.Option(help="Timed windows per loop (median and spread are taken over them).", metavar="N")
    ] = 5,
    warmup: Annotated[
        int, typer.Option(help="Minimum warm-up steps (more run until step times settle).", metavar="N")
    ] = 3,
    # the shared --optimizer, with bench's two reference recipes' fixed hyperparameters
    optimizer: Annotated[
        str,
        typer.Option(
            "--optimizer",
            help="sgd (momentum 0.9, weight decay 1e-4) or adamw (weight decay 0.05): the reference recipes.",
            metavar="NAME",
        ),
    ] = "sgd",
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate (default 0.01 for sgd, 0.001 for adamw).", metavar="LR"),
    ] = None,
    amp: AmpOpt = "off",
    channels_last: ChannelsLastOpt = False,
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model; compile time is reported apart.")
    ] = False,
    compile_mode: Annotated[str, typer.Option(help="torch.compile mode.", metavar="MODE")] = "default",
    data: Annotated[
        Path | None,
        typer.Option(
            help="ImageFolder root: time the real input pipeline instead of synthetic tensors.", metavar="DIR"
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="DataLoader workers with --data (default min(4, CPUs)).", metavar="N")
    ] = None,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline/--no-baseline", help="Interleave a plain hand-written loop and report the ratio."
        ),
    ] = True,
    check: CheckOpt = True,
    require_speed: Annotated[
        bool,
        typer.Option(
            "--require-speed",
            help="Exit 1 also when torchscope / baseline is below the goal (0.98), not only on a broken freeze.",
        ),
    ] = False,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="Render two --output files side by side with ratios; runs nothing.", metavar="A B"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also save every raw window time and the summary as JSON.", metavar="FILE"
        ),
    ] = None,
    out: OutputSet,
    progress: ProgressOpt = True,
) -> None:
    """Time a reference fine-tune (frozen backbone vs full) against a plain loop; MFU, memory, checks."""
    from torchscope.render.bench import render_bench, render_compare

    to_stdout, output = _json_options(out.json, list(ctx.args), output)
    if compare is not None:
        if output is not None or to_stdout:
            raise TorchscopeError("--compare runs nothing, so there is no result for --json/--output; drop it")
        shown = dataclasses.replace(out, json=False).output("torchscope bench --compare", tuple(compare))
        a, b = (_read_result(p) for p in compare)
        emit(None, lambda: render_compare(a, b, (compare[0].name, compare[1].name)), shown)
        return
    # every setting and output path is checked before anything is loaded or timed
    inputs = command_inputs(model)
    shown = dataclasses.replace(out, json=to_stdout).output(f"torchscope bench {model}", inputs)
    _check_outputs(output, out.html, out.svg, inputs, out.force)
    batch, seq_len, token_dtype = _tokens(synthetic.input_size, synthetic.dtype, batch_size)
    if finetune not in ("frozen", "full", "both"):
        raise TorchscopeError(f"--finetune {finetune!r} is not one of frozen, full, both")
    settings = BenchConfig(
        model=model, modes=modes_of(finetune), device=None if device == "auto" else device,
        batch_size=batch, max_batch_size=max_batch_size, image_size=image_size,
        num_classes=num_classes, steps=window_steps, windows=windows, warmup=warmup, optimizer=optimizer, lr=lr,
        amp=amp, channels_last=channels_last, compile=compile, compile_mode=compile_mode,
        data=None if data is None else str(data), workers=workers, baseline=baseline, check=check,
        seq_len=seq_len, token_dtype=token_dtype, hf_config=tuple(parse_kwargs(config, option="--config").items()),
        task=task, num_labels=num_labels, seed=check_seed(synthetic.seed),
    )  # fmt: skip
    settings.validate()
    from torchscope._bench.run import run_bench  # torch: only once every input is known to be usable

    rank0 = os.environ.get("RANK", "0") == "0"
    with progress_shown(progress and rank0 and not to_stdout, out.no_color) as bar:
        result = run_bench(settings, progress=bar)
    if not rank0:  # every rank ran; rank 0 speaks for all of them
        return
    if output is not None:
        # written first, so a failing --console-html cannot lose the measurement; checked again in case
        # the path changed during the run
        _check_outputs(output, out.html, out.svg, inputs, out.force)
        write_files({output: to_json(result.to_dict()) + "\n"})
    emit(result, lambda: render_bench(result), shown)
    failures = result.failures(strict=require_speed)
    if failures:
        for line in failures:
            typer.echo(f"bench: {line}", err=True)
        raise typer.Exit(ExitCode.VIOLATION)
