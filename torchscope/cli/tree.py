"""``torchscope tree`` (the module hierarchy, no forward pass) and ``torchscope models``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from torchscope.cli._app import app
from torchscope.cli._common import load_cli_model
from torchscope.cli._options import DepthOpt, ExpandOpt, GrepOpt, JsonOpt, NoColorOpt
from torchscope.cli._output import Output, command_inputs, emit
from torchscope.cli._sets import Defaults, FreezeSet, LoadSet, OutputSet, takes_sets


@app.command("tree")
@takes_sets
def tree_command(
    *,
    load: Annotated[LoadSet, Defaults(device="meta")],
    frozen: FreezeSet,
    depth: DepthOpt = None,
    grep: GrepOpt = None,
    trainable_only: Annotated[
        bool, typer.Option("--trainable-only", help="Only modules with trainable params.")
    ] = False,
    frozen_only: Annotated[
        bool, typer.Option("--frozen-only", help="Only modules with frozen params.")
    ] = False,
    expand: ExpandOpt = False,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Reuse the tree of a torchvision name built on meta (no --weights/--pretrained) from "
            "~/.cache/torchscope/tree, so a repeat run needs no torch import; TORCHSCOPE_CACHE_DIR "
            "moves the cache. --no-cache neither reads nor writes it.",
        ),
    ] = True,
    out: OutputSet,
) -> None:
    """Show the module tree: params (tied counted once), trainable state, train/eval mode, hooks."""
    from torchscope._treecache import load_cached_tree, store_tree, tree_cache_key
    from torchscope.render.tree import check_display_options, render_tree

    output = out.output(f"torchscope tree {load.model}", command_inputs(load.model, load.weights))
    check_display_options(depth, trainable_only, frozen_only)
    # the hf: options are not part of the key: hf: specs are never cached
    key = None
    if cache:
        key = tree_cache_key(
            load.model, weights=load.weights, args=load.arg, pretrained=load.pretrained, device=load.device,
            freeze=frozen.freeze, unfreeze=frozen.unfreeze, freeze_backbone=frozen.freeze_backbone,
        )  # fmt: skip
    # a hit renders the stored tree without importing torch: that import is most of the run time
    data = load_cached_tree(key) if key is not None else None
    if data is None:
        from torchscope._tree import tree

        data = tree(load_cli_model(load, frozen))
        if key is not None:
            store_tree(key, data)
    render = lambda: render_tree(  # noqa: E731
        data, depth=depth, grep=grep, trainable_only=trainable_only, frozen_only=frozen_only, expand=expand
    )
    emit(data, render, output)


@dataclass(frozen=True)
class ModelNames:
    """The model names ``torchscope models`` lists."""

    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {"names": list(self.names)}


@app.command("models")
def models_command(
    grep: GrepOpt = None,
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
