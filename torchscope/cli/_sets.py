"""Option sets: groups of options that several commands take, each declared once as a frozen dataclass.

A command names the sets it takes as parameters typed with the set, and :func:`takes_sets` (applied
under ``@app.command``) gives Typer the set's fields as the command's options, then hands the command
one filled dataclass per set::

    @app.command("stats")
    @takes_sets
    def stats_command(load: Annotated[LoadSet, Defaults(device="cpu")], out: OutputSet) -> None:
        model = load_cli_model(load)

Typer has no dependency injection of its own: the decorator rewrites the function's signature,
replacing each set parameter by the set's fields (their ``Annotated`` aliases of
:mod:`torchscope.cli._options`), so ``--help``, parsing and docs/cli.md see plain options. A
command that needs another default for a field (``--device meta``) says so with :class:`Defaults`
in the set parameter's annotation; nothing else about the option can change per command.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from torchscope._checkparts.config import DEFAULT_STEP, ReferenceStep
from torchscope.cli._options import (
    DEFAULT_SEED,
    ArgOpt,
    DeviceOpt,
    DtypeOpt,
    ForceOpt,
    FreezeBackboneOpt,
    FreezeOpt,
    HfConfigOpt,
    HtmlOpt,
    InputSizeOpt,
    JsonOpt,
    LrOpt,
    ModelArg,
    MomentumOpt,
    NoColorOpt,
    NoVerifyOpt,
    NumLabelsOpt,
    OptimizerOpt,
    PretrainedOpt,
    SeedOpt,
    SvgOpt,
    TaskOpt,
    TrainBnOpt,
    UnfreezeOpt,
    UnsafeLoadOpt,
    WeightDecayOpt,
    WeightsOpt,
)

if typing.TYPE_CHECKING:
    from torchscope.cli._output import Output

R = TypeVar("R")


class OptionSet:
    """Base of every option set: a frozen dataclass whose fields are CLI options."""


@dataclass(frozen=True)
class LoadSet(OptionSet):
    """How the model is found and built: the spec and every loader option."""

    model: ModelArg
    weights: WeightsOpt = None
    arg: ArgOpt = None
    pretrained: PretrainedOpt = False
    unsafe_load: UnsafeLoadOpt = False
    no_verify: NoVerifyOpt = False
    config: HfConfigOpt = None
    task: TaskOpt = None
    num_labels: NumLabelsOpt = None
    device: DeviceOpt = "cpu"


@dataclass(frozen=True)
class FreezeSet(OptionSet):
    """What is frozen before the command looks: ``--freeze``, ``--unfreeze``, ``--freeze-backbone``."""

    freeze: FreezeOpt = None
    unfreeze: UnfreezeOpt = None
    freeze_backbone: FreezeBackboneOpt = False


@dataclass(frozen=True)
class InputSet(OptionSet):
    """The synthetic batch: its shape, its dtype and the seed of its random numbers (and the model's)."""

    input_size: InputSizeOpt = None
    dtype: DtypeOpt = None
    seed: SeedOpt = DEFAULT_SEED


@dataclass(frozen=True)
class StepSet(OptionSet):
    """The reference training step: the optimizer and its hyperparameters, the norm layers' mode."""

    optimizer: OptimizerOpt = DEFAULT_STEP.optimizer
    lr: LrOpt = DEFAULT_STEP.lr
    momentum: MomentumOpt = DEFAULT_STEP.momentum
    weight_decay: WeightDecayOpt = DEFAULT_STEP.weight_decay
    train_bn: TrainBnOpt = DEFAULT_STEP.train_bn

    def reference(self, seed: int, steps: int = DEFAULT_STEP.steps) -> ReferenceStep:
        """The checked reference step (a bad value fails here, before any work)."""
        return ReferenceStep(self.optimizer, self.lr, self.momentum, self.weight_decay, steps, self.train_bn, seed)


@dataclass(frozen=True)
class OutputSet(OptionSet):
    """Where the result goes besides the terminal: JSON, HTML/SVG copies, colours, overwriting."""

    json: JsonOpt = False
    html: HtmlOpt = None
    svg: SvgOpt = None
    no_color: NoColorOpt = False
    force: ForceOpt = False

    def output(self, title: str, inputs: tuple[Path, ...] = (), page: Path | None = None) -> Output:
        """The command's :class:`~torchscope.cli._output.Output` (every output path checked now)."""
        from torchscope.cli._output import Output

        return Output(
            json=self.json, html=self.html, svg=self.svg, page=page, no_color=self.no_color,
            force=self.force, title=title, inputs=inputs,
        )  # fmt: skip


@dataclass(frozen=True)
class Defaults:
    """A command's own defaults for some fields of a set: ``Annotated[LoadSet, Defaults(device="meta")]``."""

    values: Mapping[str, Any]

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "values", dict(values))


def _set_of(annotation: Any) -> tuple[type[OptionSet], Mapping[str, Any]] | None:
    """(the set, its per-command defaults) if ``annotation`` is a set, plain or ``Annotated``."""
    metadata: tuple[Any, ...] = ()
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *rest = typing.get_args(annotation)
        metadata = tuple(rest)
    if not (isinstance(annotation, type) and issubclass(annotation, OptionSet)):
        return None
    defaults: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, Defaults):
            defaults.update(item.values)
    return annotation, defaults


def set_parameters(cls: type[OptionSet], defaults: Mapping[str, Any]) -> list[inspect.Parameter]:
    """The set's fields as keyword-only parameters, with their ``Annotated`` option and default."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(defaults) - set(names))
    if unknown:
        raise TypeError(f"Defaults({', '.join(unknown)}=...): {cls.__name__} has no such field")
    params = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        default = defaults.get(f.name, f.default)
        if default is dataclasses.MISSING:
            default = inspect.Parameter.empty
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[f.name]))
    return params


def takes_sets(func: Callable[..., R]) -> Callable[..., R]:
    """Give Typer the fields of every option-set parameter of ``func`` as options (see the module docs).

    Raises:
        TypeError: two sets (or a set and a plain parameter) share a field name, or a ``Defaults``
            names a field the set does not have; at import, so a command cannot be registered broken.
    """
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    sets: dict[str, tuple[type[OptionSet], tuple[str, ...]]] = {}
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        found = _set_of(hints.get(param.name, param.annotation))
        if found is None:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(param.name, param.annotation)))
            continue
        cls, defaults = found
        fields = set_parameters(cls, defaults)
        sets[param.name] = (cls, tuple(p.name for p in fields))
        params.extend(fields)
    seen: set[str] = set()
    for p in params:
        if p.name in seen:
            raise TypeError(f"{func.__name__}: option {p.name!r} is declared twice (two sets, or a set and a parameter)")
        seen.add(p.name)

    @functools.wraps(func)
    def command(**kwargs: Any) -> R:
        built = {name: cls(**{f: kwargs.pop(f) for f in fields}) for name, (cls, fields) in sets.items()}
        return func(**kwargs, **built)

    # required options first, as Typer lists them; keyword-only, so order needs no defaults rule
    command.__signature__ = signature.replace(parameters=params, return_annotation=signature.return_annotation)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    del command.__wrapped__  # type: ignore[attr-defined]  # inspect must see the new signature
    return command
