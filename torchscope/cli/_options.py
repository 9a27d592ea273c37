"""Every option that more than one command takes, declared once.

A command spells a shared option by its alias and gives its own default at the use site::

    def summary_command(model: ModelArg, device: DeviceOpt = "meta", json: JsonOpt = False): ...

so ``--device`` (or ``--momentum``, ``--input-size``...) has one name, one help text and one meaning in
every command. Values with a grammar (shapes, patterns, ``k=v``) are strings here and parsed by the
one parser of :mod:`torchscope._parsing`, inside the command, before any work starts. Flags (booleans)
show no type in ``--help``: the app's command group blanks their metavar for every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# -- the model and how it is loaded -------------------------------------------------------------
ModelArg = Annotated[
    str,
    typer.Argument(
        help="torchvision name (resnet18), timm:NAME, hf:MODEL_TYPE (hf:llama), hf:DIR (a local Hugging Face "
        "model or adapter directory), pkg.module:attr, path/to/file.py:attr, or a TorchScript/.pt2/whole-model file.",
        show_default=False,
        metavar="MODEL",
    ),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights", help="state_dict file (.pt or .safetensors) to load into the architecture.", metavar="FILE"
    ),
]
HfConfigOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        help="hf: models: override a config field, k=v (e.g. num_hidden_layers=2). Repeatable.",
        metavar="K=V",
    ),
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task",
        help="hf: models: the head, base, causal-lm, sequence-classification or token-classification "
        "(default: the directory's architecture, else causal-lm for decoder-only types, base otherwise).",
        metavar="TASK",
    ),
]
NumLabelsOpt = Annotated[
    int | None, typer.Option("--num-labels", help="hf: classifiers: the number of labels.", metavar="N")
]
ArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--arg",
        help="Keyword argument for the model builder, k=v (value is a Python literal). Repeatable.",
        metavar="K=V",
    ),
]
PretrainedOpt = Annotated[
    bool,
    typer.Option("--pretrained", help="Load torchvision's default weights from the local torch hub cache."),
]
UnsafeLoadOpt = Annotated[
    bool,
    typer.Option("--unsafe-load", help="Allow files that pickle a whole module (runs code from the file)."),
]
NoVerifyOpt = Annotated[
    bool,
    typer.Option(
        "--no-verify",
        help="Skip checking the CRC-32 of every record of a checkpoint archive (faster; a damaged tensor then loads).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where to build and run the model: meta (no memory, no values: shapes and FLOPs only), "
        "cpu, cuda, cuda:N or mps.",
        metavar="DEVICE",
    ),
]

# -- what is frozen --------------------------------------------------------------------------------
FreezeOpt = Annotated[
    str | None,
    typer.Option(
        "--freeze", help="Comma-separated glob patterns of modules/params to freeze.", metavar="GLOBS"
    ),
]
UnfreezeOpt = Annotated[
    str | None,
    typer.Option(
        "--unfreeze", help="Comma-separated glob patterns of modules/params to unfreeze.", metavar="GLOBS"
    ),
]
FreezeBackboneOpt = Annotated[
    bool, typer.Option("--freeze-backbone", help="Freeze everything but the classifier head.")
]

# -- the synthetic batch ---------------------------------------------------------------------------
InputSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--input-size",
        "--tokens",
        help="Input shape: 1,3,224,224 or 1x3x224x224; several inputs: 1,3,8,8;1,10. A language model "
        "(hf:) given BATCHxLENGTH gets token ids below its vocab size and an all-ones mask. "
        "Default: the model family's own size.",
        metavar="SHAPE",
    ),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        "--input-dtype",
        help="dtype of the synthetic inputs (float32, bf16, int64...; token ids: long).",
        metavar="DTYPE",
    ),
]
DEFAULT_SEED = 0
"""Every command that draws random weights or inputs seeds with ``--seed``, this one by default."""
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of the random initialisation and inputs, set before the model is built: two runs give "
        "the same numbers.",
        metavar="N",
    ),
]

BATCH_SIZE_HELP = "Samples per step; --input-size is then one sample's shape (3,224,224 or LENGTH), as with --fit."

# -- the reference training step -------------------------------------------------------------------
OptimizerOpt = Annotated[
    str, typer.Option("--optimizer", help="sgd (with --momentum), adam or adamw.", metavar="NAME")
]
LrOpt = Annotated[float, typer.Option("--lr", help="Learning rate.", metavar="LR")]
MomentumOpt = Annotated[
    float,
    typer.Option("--momentum", help="SGD momentum, 0 for plain SGD (Adam/AdamW: beta1).", metavar="M"),
]
WeightDecayOpt = Annotated[float, typer.Option("--weight-decay", help="Weight decay.", metavar="WD")]
TrainBnOpt = Annotated[
    bool,
    typer.Option(
        "--train-bn/--eval-bn",
        help="Leave frozen norm layers in train mode as model.train() does (the bug), or put them in "
        "eval (the fix).",
    ),
]
CheckOpt = Annotated[
    bool,
    typer.Option("--check/--no-check", help="Check the freeze invariants on one reference step (on a copy)."),
]
StepsOpt = Annotated[int, typer.Option("--steps", help="Training steps to run.", metavar="N")]
ModeOpt = Annotated[
    str, typer.Option("--mode", help="train or eval (eval: a no_grad forward where nothing trains).", metavar="MODE")
]
AmpOpt = Annotated[
    str, typer.Option("--amp", help="Autocast dtype: off, bf16, fp16 (fp16 scales the loss with a GradScaler).", metavar="DTYPE")
]
ChannelsLastOpt = Annotated[bool, typer.Option("--channels-last", help="NHWC memory format for model and inputs.")]

# -- where the result goes -------------------------------------------------------------------------
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Write the collected data as JSON to stdout (and nothing else).")
]
HtmlOpt = Annotated[
    Path | None,
    typer.Option("--console-html", help="Also save the console output as an HTML file.", metavar="FILE"),
]
SvgOpt = Annotated[
    Path | None,
    typer.Option("--svg", help="Also save the console output as an SVG file.", metavar="FILE"),
]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="Plain text, no colours.")]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Overwrite output files that torchscope did not write (never the command's inputs)."
    ),
]

# -- display ---------------------------------------------------------------------------------------
DepthOpt = Annotated[
    int | None,
    typer.Option("--depth", help="Show modules down to this depth (0: the model only).", metavar="N"),
]
GrepOpt = Annotated[
    str | None,
    typer.Option(
        "--grep",
        help="Only what contains PATTERN in its name (tree: or its type), or matches it as a glob.",
        metavar="PATTERN",
    ),
]
ExpandOpt = Annotated[
    bool, typer.Option("--expand", help="Show everything: do not collapse repeated identical blocks.")
]
ModulesOpt = Annotated[
    str | None,
    typer.Option(
        "--modules",
        help="Comma-separated glob patterns of the modules whose activations to record (default: all).",
        metavar="GLOBS",
    ),
]
ProgressOpt = Annotated[
    bool,
    typer.Option(
        "--progress/--no-progress",
        help="A progress bar with the time left on stderr (never under --json, or when stderr is not a terminal).",
    ),
]
