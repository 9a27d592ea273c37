"""What a PEFT model is made of, read from its modules' attributes (peft itself is never imported).

peft's tuner layers (``LoraLayer`` and the others) name the attributes that hold one entry per
adapter in ``adapter_layer_names`` (``lora_A``, ``lora_B``, ``lora_embedding_A``, ``ia3_l``...); a
``ModulesToSaveWrapper`` keeps the trainable copy of a module in ``modules_to_save``; a prompt-learning
model keeps its prompt in ``prompt_encoder``; the adapters' settings are in ``peft_config``
(``{adapter name: config}``). Everything else is the base model. Nothing here changes the model.

Two readers of the same attributes: :func:`adapter_parts` splits the params by role (for the checks
and the ``testing`` helpers), :func:`collect_adapters` describes each adapter (for ``tree``).

Quantized weights (bitsandbytes ``Params4bit``) store two 4-bit values per byte of a packed
tensor, so ``numel()`` is not the count of weights: :func:`logical_numel` gives the weights the
layer computes with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope._treedata import AdapterInfo

__all__ = [
    "HEAD_NAMES",
    "AdapterParts",
    "LoraPair",
    "adapter_parts",
    "collect_adapters",
    "config_value",
    "inner_model",
    "is_peft_model",
    "logical_numel",
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
# the attributes of a peft tuner layer that hold one entry per adapter name, for layers whose class
# does not list them in ``adapter_layer_names``
_ADAPTER_ATTRS: tuple[str, ...] = (
    "lora_A",
    "lora_B",
    "lora_embedding_A",
    "lora_embedding_B",
    "lora_magnitude_vector",
    "ia3_l",
    "lokr_w1",
    "lokr_w2",
    "loha_w1_a",
    "loha_w1_b",
    "loha_w2_a",
    "loha_w2_b",
    "oft_r",
    "boft_R",
    "vera_lambda_b",
    "vera_lambda_d",
)


def adapter_layer_names(module: nn.Module) -> tuple[str, ...]:
    """The attributes of a peft tuner layer that hold its adapters (``()`` for any other module)."""
    names = getattr(type(module), "adapter_layer_names", None)
    return names if isinstance(names, tuple) else ()


def peft_configs(model: nn.Module) -> dict[str, Any]:
    """``{adapter name: config}`` of a PEFT model (its ``peft_config``), empty for any other model."""
    try:
        # PeftModel hands attribute lookups to its tuner (LoraModel...), which holds the configs
        configs = getattr(model, "peft_config", None)
    except Exception:  # a user's __getattr__ may raise anything; then there is no adapter to show
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
        layer_attrs = adapter_layer_names(module)
        if not layer_attrs:
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


def logical_numel(t: torch.Tensor) -> int:
    """The number of weights ``t`` stands for: ``numel()``, except for packed 4-bit weights.

    A bitsandbytes ``Params4bit`` knows its logical shape (``quant_state.shape``) once quantized;
    before that (or without one), every byte of its storage packs two 4-bit values, so a tensor
    of ``n`` elements of ``k`` bytes holds ``2 * k * n`` weights (peft's own rule).

    >>> logical_numel(torch.zeros(3, 4))
    12
    """
    if type(t).__name__ != "Params4bit":
        return t.numel()
    shape = getattr(getattr(t, "quant_state", None), "shape", None)
    if shape is not None:
        return math.prod(int(d) for d in shape)
    return t.numel() * 2 * t.element_size()


def _targets(config: Any) -> tuple[str, ...]:
    targets = config_value(config, "target_modules")
    if targets is None:
        return ()
    if isinstance(targets, str):
        return (targets,)  # a regex
    return tuple(sorted(str(t) for t in targets))


def _holds(module: nn.Module, adapter: str) -> list[torch.Tensor]:
    """The tensors of ``adapter`` in one tuner layer (empty if it carries none)."""
    out: list[torch.Tensor] = []
    for attr in adapter_layer_names(module) or _ADAPTER_ATTRS:
        if attr == "modules_to_save":  # a wrapper's copy is a copy, not an adapter's tensors
            continue
        holder = module.__dict__.get("_modules", {}).get(attr) or module.__dict__.get("_parameters", {}).get(
            attr
        )
        if isinstance(holder, nn.ModuleDict) and adapter in holder:
            out.extend(holder[adapter].parameters())
        elif isinstance(holder, nn.ParameterDict) and adapter in holder:
            out.append(holder[adapter])
    return out


def _active(root: nn.Module, adapter: str) -> bool:
    active = getattr(root, "active_adapters", None)
    try:
        names = active() if callable(active) else active
    except (AttributeError, ValueError):
        return True
    if isinstance(names, str):
        return names == adapter
    return adapter in names if isinstance(names, Iterable) else True


def collect_adapters(root: nn.Module, count: Any = logical_numel) -> tuple[AdapterInfo, ...]:
    """Every PEFT adapter on ``root`` (unwrapped), in ``peft_config`` order; ``()`` without peft."""
    configs = peft_configs(root)
    if not configs:
        return ()
    out: list[AdapterInfo] = []
    for adapter, config in configs.items():
        carriers: list[str] = []
        copies: list[str] = []
        tensors: dict[int, torch.Tensor] = {}
        for name, module in root.named_modules():
            held = _holds(module, adapter)
            if held:
                carriers.append(name)
                tensors.update({id(t): t for t in held})
            saved = module.__dict__.get("_modules", {}).get("modules_to_save")
            if type(module).__name__ == "ModulesToSaveWrapper" and isinstance(saved, nn.ModuleDict):
                if adapter in saved:
                    copies.append(name)
                    tensors.update({id(t): t for t in saved[adapter].parameters()})
        r = config_value(config, "r")
        alpha = config_value(config, "lora_alpha")
        kind = config_value(config, "peft_type")
        out.append(
            AdapterInfo(
                name=str(adapter),
                kind=str(getattr(kind, "value", kind) or type(config).__name__),
                r=r if isinstance(r, int) and not isinstance(r, bool) else None,
                alpha=float(alpha)
                if isinstance(alpha, int | float) and not isinstance(alpha, bool)
                else None,
                rank_pattern=bool(
                    config_value(config, "rank_pattern") or config_value(config, "alpha_pattern")
                ),
                targets=_targets(config),
                modules=tuple(carriers),
                modules_to_save=tuple(copies),
                params=sum(count(t) for t in tensors.values()),
                trainable_params=sum(count(t) for t in tensors.values() if t.requires_grad),
                active=_active(root, str(adapter)),
            )
        )
    return tuple(out)
