"""The weights of an ``hf:DIR``, checked without reading a value: the same verdict on meta as on a real device.

:func:`file_shapes` reads what the directory's weight files hold (safetensors headers, checked as
:func:`~torchscope._loader.safetensors_io.read_header` checks them; a sharded index whose shards must
exist and hold the keys it names; ``pytorch_model.bin`` loaded onto meta after its CRC-32 check).
:func:`fit_on_meta` matches those names and shapes to a model built on meta the way transformers'
``from_pretrained`` matches them (its key renamings and base-model prefix where transformers provides
them), and :func:`check_fit` applies one rule to that and to ``from_pretrained``'s own loading info:

- a key of the model that the file does not hold is refused when the class is the one the directory
  was saved as (its ``architectures``); with another class (a ``--task`` that picks another head, or
  no ``architectures``) new head weights are expected, and only a file that fits nothing is refused;
- a shape that differs is refused (with ``--num-labels``, the classifier's own weights are new);
- a key the model does not have is not refused (a checkpoint saved with a pretraining head, as
  bert-base-uncased is, loads into the masked-LM class); it is named when the load is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from torchscope._format import format_shape
from torchscope._loader.common import few
from torchscope._loader.files import extract_state_dict, tied_names, torch_load
from torchscope._loader.safetensors_io import read_header
from torchscope.errors import SpecError

SAFETENSORS, BIN = "model.safetensors", "pytorch_model.bin"
_COPY = "copy the directory again"


def weight_files(path: Path) -> list[Path]:
    """The directory's weight files as ``from_pretrained`` picks them: an index first, then a single file."""
    for index in (f"{SAFETENSORS}.index.json", f"{BIN}.index.json"):
        if (path / index).is_file():
            return [path / index]
    return [path / f for f in (SAFETENSORS, BIN) if (path / f).is_file()]


def _shapes_of(file: Path, unsafe_load: bool) -> dict[str, tuple[int, ...]]:
    if file.suffix == ".safetensors":
        return {name: info.shape for name, info in read_header(file).items()}
    state = extract_state_dict(torch_load(file, "meta", unsafe_load=unsafe_load), file)
    return {name: tuple(t.shape) for name, t in state.items()}


def _sharded(path: Path, index: Path, unsafe_load: bool) -> dict[str, tuple[int, ...]]:
    try:
        data = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"{index} does not load ({type(exc).__name__}); {_COPY}") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise SpecError(f"{index} has no weight_map (tensor name -> shard file); {_COPY}")
    held: dict[str, dict[str, tuple[int, ...]]] = {}
    for shard in sorted(set(weight_map.values())):
        file = path / shard
        if not file.is_file():
            raise SpecError(f"{index} names shard {shard!r}, which is not in {path}; copy the missing shard or {_COPY}")
        held[shard] = _shapes_of(file, unsafe_load)
    for name, shard in weight_map.items():
        if name not in held[shard]:
            raise SpecError(
                f"{index} puts {name!r} in {shard}, which does not hold it: the index and the shards are "
                f"from different saves; {_COPY}"
            )
    shapes: dict[str, tuple[int, ...]] = {}
    for part in held.values():
        for name, shape in part.items():
            shapes.setdefault(name, shape)
    return shapes


def file_shapes(path: Path, unsafe_load: bool = False) -> dict[str, tuple[int, ...]] | None:
    """Every tensor the directory's weights hold, name -> shape, reading no value; ``None`` without weights.

    A ``pytorch_model.bin`` that pickles Python objects needs ``unsafe_load``, as for ``--weights``.
    """
    files = weight_files(path)
    if not files:
        return None
    if files[0].name.endswith(".index.json"):
        return _sharded(path, files[0], unsafe_load)
    return _shapes_of(files[0], unsafe_load)


# ---------------------------------------------------------------------------------------------
# matching names as from_pretrained does


@dataclass(frozen=True)
class Fit:
    """How a directory's weights fit a model: the model's keys the file lacks, its extra keys, shapes that differ."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # (name, file shape, model shape)
    expected: int  # the model's keys


Renamer = Callable[[str], tuple[list[str], bool]]


def _prefix_renamer(prefix: str, expected: Mapping[str, Any]) -> Renamer:
    """transformers' base-model prefix rule: ``model.x`` loads into a base model as ``x``, and back."""

    def rename(key: str) -> tuple[list[str], bool]:
        if key not in expected and prefix:
            if key.startswith(prefix + ".") and key[len(prefix) + 1 :] in expected:
                return [key[len(prefix) + 1 :]], False
            if f"{prefix}.{key}" in expected:
                return [f"{prefix}.{key}"], False
        return [key], False

    return rename


def _renamer(model: Any, expected: dict[str, Any]) -> Renamer:
    """transformers 5's own renaming (``gamma`` -> ``weight``, fused experts...); the prefix rule before it."""
    prefix = str(getattr(model, "base_model_prefix", "") or "")
    fallback = _prefix_renamer(prefix, expected)
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

        mapping = get_model_conversion_mapping(model, None, None)
    except Exception:  # transformers 4 has neither: the prefix rule is what it does
        return fallback
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    by_pattern = {pattern: c for c in converters for pattern in c.source_patterns}

    def rename(key: str) -> tuple[list[str], bool]:
        try:
            new, pattern = rename_source_key(key, renamings, converters, prefix or None, expected)
            if new not in expected and key in expected:
                new, pattern = rename_source_key(key, [], [], prefix or None, expected)
        except Exception:  # a rule this version cannot apply: the prefix rule still names the key
            return fallback(key)
        if pattern is None or pattern not in by_pattern:
            return [new], False
        targets = by_pattern[pattern].target_patterns
        return [new.replace(targets[0], t) for t in targets], True

    return rename


def _ignored(model: nn.Module, attr: str, extra: Iterable[str] = ()) -> re.Pattern[str] | None:
    patterns = [*(getattr(model, attr, None) or ()), *extra]
    return re.compile("|".join(f"({p})" for p in patterns)) if patterns else None


def _stale_buffers(model: nn.Module) -> list[str]:
    """Buffers old checkpoints saved that transformers now recomputes (its own exception list)."""
    names = [name for name, _ in model.named_buffers()]
    out = []
    if any(n.endswith("rotary_emb.inv_freq") for n in names):
        out.append(r"rotary_emb\.inv_freq")
    if any(n.endswith("position_ids") for n in names):
        out.append(r"(^|\.)position_ids$")
    return out


def fit_on_meta(model: nn.Module, shapes: Mapping[str, tuple[int, ...]]) -> Fit:
    """How the file's names and shapes fit ``model`` (built on meta), as ``from_pretrained`` would match them."""
    expected = model.state_dict()
    rename = _renamer(model, expected)
    present: set[str] = set()
    unexpected: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for key, shape in shapes.items():
        targets, converted = rename(key)
        for target in targets:
            if target not in expected:
                unexpected.append(target)
                continue
            present.add(target)
            # a converter fuses or splits tensors (experts, qkv): its output shape is not the file's
            if not converted and tuple(expected[target].shape) != tuple(shape):
                mismatched.append((target, tuple(shape), tuple(expected[target].shape)))
    for names in tied_names(model):  # a tied weight is saved once
        if present.intersection(names):
            present.update(names)
    skip_missing = _ignored(model, "_keys_to_ignore_on_load_missing")
    skip_unexpected = _ignored(model, "_keys_to_ignore_on_load_unexpected", _stale_buffers(model))
    missing = [k for k in expected if k not in present and not (skip_missing and skip_missing.search(k))]
    extra = [k for k in unexpected if not (skip_unexpected and skip_unexpected.search(k))]
    return Fit(tuple(missing), tuple(extra), tuple(mismatched), len(expected))


def fit_from_info(model: nn.Module, info: Mapping[str, Any]) -> Fit:
    """The same, from ``from_pretrained(..., output_loading_info=True)``'s report."""
    mismatched = []
    for entry in info.get("mismatched_keys") or ():
        if isinstance(entry, tuple | list) and len(entry) == 3:
            mismatched.append((str(entry[0]), tuple(entry[1]), tuple(entry[2])))
    return Fit(
        tuple(info.get("missing_keys") or ()),
        tuple(info.get("unexpected_keys") or ()),
        tuple(mismatched),
        len(model.state_dict()),
    )


def _in_head(model: nn.Module, key: str) -> bool:
    """Whether ``key`` belongs to the task head, outside the base model (``classifier.weight``, ``lm_head.weight``)."""
    prefix = str(getattr(model, "base_model_prefix", "") or "")
    if not prefix or not isinstance(getattr(model, prefix, None), nn.Module):
        return False  # the model is the base model
    return not key.startswith(prefix + ".")


def check_fit(fit: Fit, model: nn.Module, path: Path, *, saved_class: bool, new_head: bool) -> None:
    """Refuse weights that do not make the model (the rule is in the module docstring)."""
    cls = type(model).__name__
    order = {name: i for i, name in enumerate(model.state_dict())}  # one order, whoever matched the names
    wrong = sorted(
        (m for m in fit.mismatched if not (new_head and _in_head(model, m[0]))), key=lambda m: order.get(m[0], -1)
    )
    missing = sorted(fit.missing, key=lambda k: (order.get(k, -1), k))
    unexpected = sorted(fit.unexpected)
    if wrong:
        shown = [f"{k} {format_shape(a)} vs {format_shape(b)}" for k, a, b in wrong]
        raise SpecError(
            f"the weights in {path} do not fit {cls}: shape mismatch at {few(shown, 3)} (file vs model); "
            "config.json and the weights are from different models, or the --config values change a size: "
            "check the directory (or the --config values)"
        )
    refuse = bool(missing) if saved_class else len(missing) == fit.expected > 0
    if refuse:
        extra = f", and it holds keys the model does not have: {few(unexpected, 3)}" if unexpected else ""
        raise SpecError(
            f"the weights in {path} do not fit {cls}: {len(missing)} of its {fit.expected} keys are not in "
            f"the file ({few(missing, 3)}){extra}; config.json and the weights are from different "
            "models, or the --config values change the architecture: check the directory (or the --config values)"
        )
