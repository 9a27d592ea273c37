"""``target_modules`` that match no module of the base model, said with the closest module names.

peft raises ``ValueError("Target modules {...} not found in the base model")`` and stops there; the
user who copied ``["q_proj", "v_proj"]`` from a Llama recipe onto a BERT model wants to read that
BERT calls them ``query`` and ``value``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from torch import nn

__all__ = ["ADAPTABLE", "adaptable_leaves", "closest_names", "unmatched_targets", "unmatched_targets_message"]

#: The layer types LoRA adapts (transformers' GPT-2 ``Conv1D`` included), by class name.
ADAPTABLE: frozenset[str] = frozenset(
    {"Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding", "Conv1D", "MultiheadAttention"}
)


def _matches(name: str, key: str) -> bool:
    # peft's rule for a list entry: the whole name, or its last components
    return name == key or name.endswith("." + key)


def unmatched_targets(model: nn.Module, targets: Any) -> list[str]:
    """The entries of ``targets`` (a list of names, or one regex) that match no module of ``model``.

    >>> unmatched_targets(nn.Sequential(nn.Linear(2, 2)), ["0", "q_proj"])
    ['q_proj']
    """
    names = [n for n, _ in model.named_modules() if n]
    if targets is None:
        return []
    if isinstance(targets, str):
        if targets == "all-linear":
            return []
        try:
            pattern = re.compile(targets)
        except re.error:
            return [targets]
        return [] if any(pattern.fullmatch(n) for n in names) else [targets]
    # sorted: peft keeps target_modules as a set, saved in no fixed order
    return sorted(str(k) for k in targets if not any(_matches(n, str(k)) for n in names))


def adaptable_leaves(model: nn.Module) -> list[str]:
    """The distinct last name components of the layers LoRA can adapt, in model order.

    >>> adaptable_leaves(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    ['0']
    """
    leaves = [n.rpartition(".")[2] for n, m in model.named_modules() if n and type(m).__name__ in ADAPTABLE]
    return list(dict.fromkeys(leaves))


def _score(key: str, name: str) -> float:
    # Abbreviations (q_proj / query, v_proj / value) share little but the first letter, which
    # difflib alone scores low: the first letter counts extra.
    ratio = difflib.SequenceMatcher(None, key.lower(), name.lower()).ratio()
    return ratio + (0.5 if key[:1].lower() == name[:1].lower() else 0.0)


def closest_names(key: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The ``n`` candidates most like ``key`` (that score above chance).

    >>> closest_names("q_proj", ["query", "key", "value", "dense"])
    ['query']
    """
    scored = sorted(
        ((round(_score(key, c), 6), i, c) for i, c in enumerate(candidates)), key=lambda t: (-t[0], t[1])
    )
    return [c for s, _, c in scored[:n] if s >= 0.6]


def unmatched_targets_message(model: nn.Module, targets: Any) -> str | None:
    """One line naming each target that matches nothing and the closest module names, or None.

    >>> net = nn.Sequential()
    >>> net.add_module("query", nn.Linear(2, 2)); net.add_module("value", nn.Linear(2, 2))
    >>> unmatched_targets_message(net, ["q_proj", "v_proj"])
    "target_modules 'q_proj', 'v_proj' match no module of Sequential (did you mean 'query' for 'q_proj', 'value' for 'v_proj'?); the layers LoRA can adapt are named: query, value"
    """
    missing = unmatched_targets(model, targets)
    if not missing:
        return None
    leaves = adaptable_leaves(model)
    hints = []
    for key in missing:
        close = closest_names(key, leaves, n=2)
        if close:
            hints.append(f"{' or '.join(repr(c) for c in close)} for {key!r}")
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    shown = ", ".join(leaves[:12]) + (f" and {len(leaves) - 12} more" if len(leaves) > 12 else "")
    what = "matches" if len(missing) == 1 else "match"
    return (
        f"target_modules {', '.join(repr(k) for k in missing)} {what} no module of {type(model).__name__}{hint}; "
        f"the layers LoRA can adapt are named: {shown or 'none'}"
    )
