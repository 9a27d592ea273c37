"""What a PEFT model is made of, read from its modules' attributes (peft itself is never imported).

peft's tuner layers (``LoraLayer`` and the others) name the attributes that hold one entry per
adapter in ``adapter_layer_names`` (``lora_A``, ``lora_B``, ``lora_embedding_A``...); a
``ModulesToSaveWrapper`` keeps the trainable copy of a module in ``modules_to_save``; a prompt-learning
model keeps its prompt in ``prompt_encoder``. Everything else is the base model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "HEAD_NAMES",
    "AdapterParts",
    "LoraPair",
    "adapter_parts",
    "config_value",
    "inner_model",
    "is_peft_model",
    "peft_configs",
    "strip_wrapper",
]

#: The attribute names transformers gives a task head that a fine-tune builds new (peft's own list
#: for SEQ_CLS is ``classifier`` and ``score``).
HEAD_NAMES: tuple[str, ...] = ("classifier", "score", "qa_outputs", "pre_classifier")
# the model classes whose head is built new for the fine-tune
_HEAD_TASKS: tuple[str, ...] = (
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
    "ForImageClassification",
    "ForAudioClassification",
)
_PREFIX = "base_model.model."


def peft_configs(model: nn.Module) -> dict[str, Any]:
    """``{adapter name: config}`` of a PEFT model (its ``peft_config``), empty for any other model."""
    try:
        configs = getattr(model, "peft_config", None)
    except AttributeError:
        return {}
    return dict(configs) if isinstance(configs, Mapping) else {}


def is_peft_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``PeftModel`` (or a tuner model) with at least one adapter config.

    >>> is_peft_model(nn.Linear(2, 2))
    False
    """
    return bool(peft_configs(model))


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """A field of a peft config object or of its dict form."""
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def inner_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a ``PeftModel`` (``base_model.model``), else ``model`` itself."""
    base = getattr(model, "base_model", None)
    inner = getattr(base, "model", None)
    return inner if isinstance(inner, nn.Module) else model


def strip_wrapper(name: str) -> str:
    """A PEFT model's qualified name as the base model spells it (``base_model.model.`` dropped).

    >>> strip_wrapper("base_model.model.bert.encoder.layer.0.attention.self.query")
    'bert.encoder.layer.0.attention.self.query'
    """
    return name[len(_PREFIX) :] if name.startswith(_PREFIX) else name


@dataclass(frozen=True)
class LoraPair:
    """One adapted layer's ``lora_A``/``lora_B`` weights of one adapter (qualified param names)."""

    layer: str
    adapter: str
    a: str
    b: str


@dataclass
class AdapterParts:
    """A PEFT model's params by role. Names are the first name ``named_parameters()`` gives."""

    adapter: dict[str, nn.Parameter]  # every adapter param: tuner layers, modules_to_save copies, prompts
    base: dict[str, nn.Parameter]  # everything else
    saved: dict[str, str]  # modules_to_save wrapper name -> the adapter whose copy is active
    pairs: list[LoraPair]
    heads: list[str]  # module names of task heads a fine-tune builds new
    bias_trainable: set[str]  # base biases the config asks to train (bias="all" / "lora_only")

    def is_adapter(self, name: str) -> bool:
        return name in self.adapter


def _named_entries(module: nn.Module, attr: str) -> Iterator[tuple[str, nn.Module | nn.Parameter]]:
    holder = getattr(module, attr, None)
    if isinstance(holder, nn.ModuleDict | nn.ParameterDict):
        yield from holder.items()


def _param_names(model: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), n)
    return names


def adapter_parts(model: nn.Module) -> AdapterParts:
    """Split a PEFT model's params into adapter and base, with its LoRA pairs and task heads."""
    names = _param_names(model)
    adapter_ids: set[int] = set()
    pairs: list[LoraPair] = []
    saved: dict[str, str] = {}
    lora_layers: list[str] = []
    for mname, module in model.named_modules():
        layer_attrs = getattr(type(module), "adapter_layer_names", None)
        if not isinstance(layer_attrs, tuple):
            continue
        for attr in layer_attrs:
            for _key, entry in _named_entries(module, attr):
                tensors = [entry] if isinstance(entry, nn.Parameter) else list(entry.parameters())
                adapter_ids.update(id(t) for t in tensors)
        if "modules_to_save" in layer_attrs:
            active = getattr(module, "active_adapters", None) or getattr(module, "active_adapter", None)
            saved[mname] = str(active[0] if isinstance(active, list | tuple) and active else active)
            continue
        lora_layers.append(mname)
        a_dict, b_dict = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
        if isinstance(a_dict, nn.ModuleDict) and isinstance(b_dict, nn.ModuleDict):
            for key in a_dict:
                wa = getattr(a_dict[key], "weight", None)
                wb = getattr(b_dict[key], "weight", None) if key in b_dict else None
                if isinstance(wa, nn.Parameter) and isinstance(wb, nn.Parameter):
                    pairs.append(LoraPair(mname, key, names[id(wa)], names[id(wb)]))
    prompt = getattr(model, "prompt_encoder", None)
    if isinstance(prompt, nn.Module):
        adapter_ids.update(id(p) for p in prompt.parameters())
    adapter = {n: p for p in model.parameters() if id(p) in adapter_ids for n in [names[id(p)]]}
    base = {n: p for p in model.parameters() if id(p) not in adapter_ids for n in [names[id(p)]]}
    return AdapterParts(adapter, base, saved, pairs, _heads(model), _bias_trainable(model, base, lora_layers))


def _heads(model: nn.Module) -> list[str]:
    inner = inner_model(model)
    if not type(inner).__name__.endswith(_HEAD_TASKS):
        return []
    prefix = next((n for n, m in model.named_modules() if m is inner), "")
    out = []
    for child, module in inner.named_children():
        if child in HEAD_NAMES and any(True for _ in module.parameters()):
            out.append(f"{prefix}.{child}" if prefix else child)
    return out


def _bias_trainable(model: nn.Module, base: Mapping[str, torch.Tensor], lora_layers: list[str]) -> set[str]:
    biases = {str(config_value(c, "bias", "none")) for c in peft_configs(model).values()}
    if "all" in biases:
        return {n for n in base if n.rpartition(".")[2] == "bias"}
    if "lora_only" in biases:
        wanted = {f"{layer}.base_layer.bias" for layer in lora_layers} | {
            f"{layer}.bias" for layer in lora_layers
        }
        return {n for n in base if n in wanted}
    return set()
