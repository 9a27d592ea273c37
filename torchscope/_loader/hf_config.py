"""``hf:`` configs: from a model type or a directory, with ``--config`` overrides, checked before anything is built.

Every way a config can be unusable is one :class:`~torchscope.errors.SpecError` line: a field the
config does not have, a value transformers rejects (its validators: a hidden size the heads do not
divide, a string where an int belongs), a ``config.json`` that is not JSON, and a layer count below 1
(transformers builds ``num_hidden_layers=-1`` as zero layers without a word).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from torchscope._loader.hf_env import import_transformers, library_detail, offline, reraise_ours
from torchscope.errors import SpecError

# config fields that count layers, across transformers' model types (gpt2's n_layer, t5's num_layers,
# bart's encoder_layers...); ``num_hidden_layers`` reaches the main one through ``attribute_map``
LAYER_FIELDS: tuple[str, ...] = (
    "num_hidden_layers",
    "n_layer",
    "n_layers",
    "num_layers",
    "num_encoder_layers",
    "num_decoder_layers",
    "encoder_layers",
    "decoder_layers",
)


def _check_overrides(config: Any, overrides: Mapping[str, Any], where: str) -> None:
    known = set(config.to_dict()) | set(getattr(config, "attribute_map", {}) or {})
    for key in overrides:
        if key not in known and not hasattr(config, key):
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see its config.json"
            raise SpecError(f"--config {key}: the {where} config has no field {key!r}; {hint}")


def config_from_type(model_type: str, overrides: Mapping[str, Any]) -> Any:
    """``AutoConfig.for_model(model_type, **overrides)``, checked."""
    tf = import_transformers()
    with offline():
        default = tf.AutoConfig.for_model(model_type)
        _check_overrides(default, overrides, model_type)
        if not overrides:
            config = default
        else:
            try:
                config = tf.AutoConfig.for_model(model_type, **overrides)
            except Exception as exc:  # transformers' validators raise their own types
                reraise_ours(exc)
                raise SpecError(
                    f"--config values do not make a {model_type} config: {library_detail(exc)}; fix the --config values"
                ) from None
    check_layer_counts(config, overrides, "--config")
    return config


def config_from_dir(path: Path, overrides: Mapping[str, Any]) -> Any:
    """``AutoConfig.from_pretrained(path)`` with the overrides set on it, checked."""
    tf = import_transformers()
    file = path / "config.json"
    with offline():
        try:
            config = tf.AutoConfig.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # not JSON, a wrong type, an unknown model_type...
            reraise_ours(exc)
            raise SpecError(f"{file} does not load: {library_detail(exc)}; fix the file") from None
        _check_overrides(config, overrides, str(file))
        for key, value in overrides.items():
            try:
                setattr(config, key, value)
            except Exception as exc:
                reraise_ours(exc)
                raise SpecError(f"--config {key}={value!r}: {library_detail(exc)}; fix the --config value") from None
        validate = getattr(config, "validate", None)
        if overrides and callable(validate):
            try:
                validate()  # the checks across fields (heads dividing the hidden size...) for_model runs
            except Exception as exc:
                reraise_ours(exc)
                raise SpecError(
                    f"{file} with the --config values is not a valid config: {library_detail(exc)}; "
                    "fix the --config values"
                ) from None
    check_layer_counts(config, overrides, str(file))
    return config


def layer_counts(config: Any) -> Iterator[tuple[str, Any]]:
    """The config's layer-count fields and their values (real fields, not ``attribute_map`` aliases)."""
    fields = config.to_dict()
    for name in LAYER_FIELDS:
        if name in fields and fields[name] is not None:
            yield name, fields[name]


def _user_name(config: Any, field: str, overrides: Mapping[str, Any]) -> str:
    """The name the user wrote for ``field`` (gpt2's ``n_layer`` given as ``num_hidden_layers``)."""
    aliases = getattr(config, "attribute_map", {}) or {}
    for key in overrides:
        if key == field or aliases.get(key) == field:
            return key
    return field


def check_layer_counts(config: Any, overrides: Mapping[str, Any], source: str) -> None:
    """Layer counts are whole numbers, the main one (and any the user set) at least 1.

    >>> import transformers
    >>> check_layer_counts(transformers.GPT2Config(n_layer=-1), {"num_hidden_layers": -1}, "--config")
    Traceback (most recent call last):
    torchscope.errors.SpecError: --config num_hidden_layers=-1: a layer count must be a whole number >= 1; give --config num_hidden_layers=N with N >= 1
    """
    aliases = getattr(config, "attribute_map", {}) or {}
    main = aliases.get("num_hidden_layers", "num_hidden_layers")
    given = {aliases.get(k, k) for k in overrides}
    for field, value in layer_counts(config):
        lowest = 1 if field == main or field in given else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            name = _user_name(config, field, overrides)
            where = "--config" if field in given else source
            bound = ">= 1" if lowest else ">= 0"
            raise SpecError(
                f"{where} {name}={value!r}: a layer count must be a whole number {bound}; "
                f"give --config {name}=N with N {bound}"
            )


def set_num_labels(config: Any, num_labels: int | None, task: str) -> None:
    if num_labels is None:
        return
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise SpecError(f"--num-labels {num_labels!r} must be a positive integer")
    if task not in ("sequence-classification", "token-classification"):
        raise SpecError(
            f"--num-labels only applies to classifiers; add --task sequence-classification (task is {task})"
        )
    config.num_labels = num_labels
