"""What :func:`torchscope.tree` says about PEFT adapters and quantized weights, without importing peft.

A PEFT model keeps its adapters' settings in ``peft_config`` (``{adapter name: config}``); each
adapted layer holds the adapter's tensors in ``ModuleDict``/``ParameterDict`` attributes keyed by
the adapter name (``lora_A``, ``lora_B``, ``lora_embedding_A``, ``ia3_l``...), and
``modules_to_save`` copies sit in a ``ModulesToSaveWrapper``. Everything here reads those
attributes; nothing is changed.

Quantized weights (bitsandbytes ``Params4bit``) store two 4-bit values per byte of a packed
tensor, so ``numel()`` is not the count of weights: :func:`logical_numel` gives the weights the
layer computes with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from torchscope._treedata import AdapterInfo

# attributes of a peft tuner layer that hold one entry per adapter name
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


def _config_value(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)


def _targets(config: Any) -> tuple[str, ...]:
    targets = _config_value(config, "target_modules")
    if targets is None:
        return ()
    if isinstance(targets, str):
        return (targets,)  # a regex
    return tuple(sorted(str(t) for t in targets))


def _holds(module: nn.Module, adapter: str) -> list[torch.Tensor]:
    """The tensors of ``adapter`` in one tuner layer (empty if it carries none)."""
    out: list[torch.Tensor] = []
    for attr in _ADAPTER_ATTRS:
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
    try:
        # PeftModel hands attribute lookups to its tuner (LoraModel...), which holds the configs
        configs = getattr(root, "peft_config", None)
    except Exception:  # a user's __getattr__ may raise anything; then there is no adapter to show
        configs = None
    if not isinstance(configs, Mapping) or not configs:
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
        r = _config_value(config, "r")
        alpha = _config_value(config, "lora_alpha")
        kind = _config_value(config, "peft_type")
        out.append(
            AdapterInfo(
                name=str(adapter),
                kind=str(getattr(kind, "value", kind) or type(config).__name__),
                r=r if isinstance(r, int) and not isinstance(r, bool) else None,
                alpha=float(alpha)
                if isinstance(alpha, int | float) and not isinstance(alpha, bool)
                else None,
                rank_pattern=bool(
                    _config_value(config, "rank_pattern") or _config_value(config, "alpha_pattern")
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
