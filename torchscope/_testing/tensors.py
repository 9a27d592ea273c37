"""The tensors under check (params and buffers, deduplicated by identity, every alias name known)
and calling the model the way every helper does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope._patterns import match_names

__all__ = ["Named", "call_model", "is_meta_or_lazy", "named_tensors", "select"]


@dataclass(frozen=True)
class Named:
    """One parameter or buffer under its first name (as ``named_parameters()`` gives it)."""

    name: str
    tensor: torch.Tensor
    is_param: bool
    module_name: str


def named_tensors(model: nn.Module) -> tuple[list[Named], dict[str, str]]:
    """Unique params and buffers, and every (alias) name -> canonical name."""
    items: dict[int, Named] = {}
    alias: dict[str, str] = {}
    for is_param, pairs in (
        (True, model.named_parameters(remove_duplicate=False)),
        (False, model.named_buffers(remove_duplicate=False)),
    ):
        for name, t in pairs:
            if t is None:
                continue
            if id(t) not in items:
                items[id(t)] = Named(name, t, is_param, name.rpartition(".")[0])
            alias[name] = items[id(t)].name
    return list(items.values()), alias


def select(model: nn.Module, patterns: Sequence[str], *, params_only: bool = False) -> list[Named]:
    """The tensors any of ``patterns`` selects (by any of their names); a pattern matching none raises."""
    named, alias = named_tensors(model)
    if params_only:
        names = [n for n, c in alias.items() if any(x.name == c and x.is_param for x in named)]
    else:
        names = list(alias)
    picked = {alias[n] for n in match_names(names, list(patterns), what="parameter or buffer")}
    return [n for n in named if n.name in picked]


def is_meta_or_lazy(t: torch.Tensor) -> bool:
    """No values to compare: a meta tensor or a lazy module's placeholder."""
    return t.is_meta or nn.parameter.is_lazy(t)


def call_model(model: nn.Module, x: Any) -> Any:
    """A tuple is passed as positional arguments (``model(*x)``), anything else as the one argument."""
    return model(*x) if isinstance(x, tuple) else model(x)
