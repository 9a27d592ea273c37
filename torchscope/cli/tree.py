"""``torchscope tree`` (the module hierarchy, no forward pass) and ``torchscope models``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from torchscope.cli._app import app
from torchscope.cli._common import load_cli_model
from torchscope.cli._options import (
    ArgOpt,
    DepthOpt,
    DeviceOpt,
    ForceOpt,
    FreezeBackboneOpt,
    FreezeOpt,
    HfConfigOpt,
    HtmlOpt,
    JsonOpt,
    ModelArg,
    NoColorOpt,
    NoVerifyOpt,
    NumLabelsOpt,
    PretrainedOpt,
    SvgOpt,
    TaskOpt,
    UnfreezeOpt,
    UnsafeLoadOpt,
    WeightsOpt,
)
from torchscope.cli._output import Output, command_inputs, emit

GrepOpt = Annotated[
    str | None,
    typer.Option(
        "--grep",
        help="Show modules whose name or type contains PATTERN (or matches a glob).",
        metavar="PATTERN",
    ),
]


@app.command("tree")
def tree_command(
    model: ModelArg,
    weights: WeightsOpt = None,
    arg: ArgOpt = None,
    pretrained: PretrainedOpt = False,
    unsafe_load: UnsafeLoadOpt = False,
    no_verify: NoVerifyOpt = False,
    config: HfConfigOpt = None,
    task: TaskOpt = None,
    num_labels: NumLabelsOpt = None,
    device: DeviceOpt = "meta",
    freeze: FreezeOpt = None,
    unfreeze: UnfreezeOpt = None,
    freeze_backbone: FreezeBackboneOpt = False,
    depth: DepthOpt = None,
    grep: GrepOpt = None,
    trainable_only: Annotated[
        bool, typer.Option("--trainable-only", help="Only modules with trainable params.")
    ] = False,
    frozen_only: Annotated[
        bool, typer.Option("--frozen-only", help="Only modules with frozen params.")
    ] = False,
    expand: Annotated[
        bool, typer.Option("--expand", help="Do not collapse repeated identical blocks.")
    ] = False,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Reuse the tree of a torchvision name built on meta (no --weights/--pretrained) from "
            "~/.cache/torchscope/tree, so a repeat run needs no torch import; TORCHSCOPE_CACHE_DIR "
            "moves the cache. --no-cache neither reads nor writes it.",
        ),
    ] = True,
    json: JsonOpt = False,
    html: HtmlOpt = None,
    svg: SvgOpt = None,
    no_color: NoColorOpt = False,
    force: ForceOpt = False,
) -> None:
    """Show the module tree: params (tied counted once), trainable state, train/eval mode, hooks."""
    from torchscope._treecache import load_cached_tree, store_tree, tree_cache_key
    from torchscope.render.tree import check_display_options, render_tree

    out = Output(
        json=json, html=html, svg=svg, no_color=no_color, force=force,
        title=f"torchscope tree {model}", inputs=command_inputs(model, weights),
    )  # fmt: skip
    check_display_options(depth, trainable_only, frozen_only)
    options: dict[str, Any] = dict(
        weights=weights,
        args=arg,
        pretrained=pretrained,
        device=device,
        freeze=freeze,
        unfreeze=unfreeze,
        freeze_backbone=freeze_backbone,
    )
    key = tree_cache_key(model, **options) if cache else None
    # a hit renders the stored tree without importing torch: that import is most of the run time
    data = load_cached_tree(key) if key is not None else None
    if data is None:
        # the hf: options are not part of the key: hf: specs are never cached
        loaded = load_cli_model(
            model, unsafe_load=unsafe_load, verify=not no_verify, config=config, task=task, num_labels=num_labels,
            **options,
        )
        from torchscope._tree import tree

        data = tree(loaded)
        if key is not None:
            store_tree(key, data)
    render = lambda: render_tree(  # noqa: E731
        data, depth=depth, grep=grep, trainable_only=trainable_only, frozen_only=frozen_only, expand=expand
    )
    emit(data, render, out)


@dataclass(frozen=True)
class ModelNames:
    """The model names ``torchscope models`` lists."""

    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {"names": list(self.names)}


@app.command("models")
def models_command(
    grep: Annotated[
        str | None,
        typer.Option("--grep", help="Only names containing PATTERN (or matching a glob).", metavar="PATTERN"),
    ] = None,
    timm: Annotated[bool, typer.Option("--timm", help="Also list timm:NAME models (needs timm).")] = False,
    json: JsonOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """List the model names that `torchscope tree NAME` (and every command) can build."""
    from fnmatch import fnmatchcase

    from rich.columns import Columns

    from torchscope._loader import list_model_names
    from torchscope.errors import PatternError

    names = list_model_names(timm=timm)
    if grep:
        glob = any(c in grep for c in "*?[")
        names = [n for n in names if (fnmatchcase(n, grep) if glob else grep.lower() in n.lower())]
        if not names:
            hint = (
                "add --timm to list timm models" if "timm" in grep and not timm else "run `torchscope models`"
            )
            raise PatternError(f"--grep {grep!r} matches no model name; {hint}")
    data = ModelNames(tuple(names))
    emit(
        data,
        lambda: Columns(list(data.names), column_first=True, padding=(0, 2)),
        Output(json=json, no_color=no_color),
    )
