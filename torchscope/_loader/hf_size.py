"""How big an ``hf:`` config's model is, known before it is built; a model too big to build is refused.

A config can ask for a million layers (``--config num_hidden_layers=1000000``): building that takes
minutes and gigabytes even on meta (each module is a Python object), and on a real device the
weights alone outgrow the machine. :func:`check_size` answers in well under a second instead: it
builds the config with 1 and with 2 layers of each layer-count field on meta (each field alone),
takes what one layer adds, and extrapolates; where that fails (a config that will not build at 1
layer), it estimates from the sizes in the config (hidden, intermediate, vocab). The model is refused
when it would have more than :data:`MAX_MODULES` modules, or, on a real device, more parameter bytes
than the device has memory.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope._format import format_bytes, format_count, format_si
from torchscope._loader.hf_config import layer_counts
from torchscope.errors import SpecError

# Above this many modules a build is refused: about 10 s to build on meta on a shared 2-core CPU
# (0.1 ms a module), and more than any published model has (Llama-3.1-405B: about 1,650; DeepSeek-V3
# in transformers 5: about 1,000).
MAX_MODULES = 100_000
# Layer counts up to this are built without an estimate on meta (at most a few thousand modules).
_CHEAP_LAYERS = 64

_HIDDEN = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim")
_INTERMEDIATE = ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "encoder_ffn_dim")
_VOCAB = ("vocab_size",)


@dataclass(frozen=True)
class SizeEstimate:
    """The model a config builds: modules, parameters and their bytes; ``exact`` when extrapolated from builds."""

    modules: int
    params: int
    param_bytes: int
    base_modules: int  # with one layer of each layer-count field
    per_layer_modules: int  # what one more layer of each field adds
    per_layer_params: int
    layers: int
    exact: bool


def _count(model: nn.Module) -> tuple[int, int, int]:
    params = {id(p): p for p in model.parameters()}.values()
    return (
        sum(1 for _ in model.modules()),
        sum(p.numel() for p in params),
        sum(p.numel() * p.element_size() for p in params),
    )


def _with_layers(config: Any, counts: dict[str, int]) -> Any:
    """A copy of ``config`` with these layer counts; per-layer lists (``layer_types``) cut to match."""
    probe = copy.deepcopy(config)
    originals = {field: getattr(config, field) for field in counts}
    for name, value in vars(config).items():
        if isinstance(value, list) and value:
            for field, count in counts.items():
                if len(value) == originals[field]:
                    setattr(probe, name, value[:count])
                    break
    for field, count in counts.items():
        setattr(probe, field, count)
    return probe


def _first(config: Any, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _from_sizes(config: Any, layers: dict[str, int]) -> SizeEstimate:
    """A lower bound from the config's sizes: attention (4 h^2) and MLP (2 h i) weights a layer, the embedding."""
    hidden = _first(config, _HIDDEN) or 0
    inner = _first(config, _INTERMEDIATE) or 4 * hidden
    vocab = _first(config, _VOCAB) or 0
    total_layers = sum(layers.values())
    per_layer = 4 * hidden * hidden + 2 * hidden * inner
    params = total_layers * per_layer + vocab * hidden
    # a layer is at least a module holding an attention and an MLP module
    return SizeEstimate(3 * total_layers, params, 4 * params, 3, 3 * len(layers), per_layer, total_layers, exact=False)


def estimate(config: Any, build: Callable[[Any], nn.Module]) -> SizeEstimate | None:
    """The size of the model ``build(config)`` makes (``build`` builds on meta), without building it.

    ``None`` when the config has no layer count.
    """
    layers = {f: v for f, v in layer_counts(config) if isinstance(v, int) and not isinstance(v, bool) and v > 0}
    if not layers:
        return None
    try:
        base = _count(build(_with_layers(config, dict.fromkeys(layers, 1))))
        modules, params, nbytes = base
        per_modules = per_params = 0
        for field, count in layers.items():
            grown = _count(build(_with_layers(config, {**dict.fromkeys(layers, 1), field: 2})))
            step = [g - b for g, b in zip(grown, base, strict=True)]
            modules += (count - 1) * step[0]
            params += (count - 1) * step[1]
            nbytes += (count - 1) * step[2]
            per_modules, per_params = per_modules + step[0], per_params + step[1]
    except Exception:  # the config does not build at 1 layer (a fixed per-layer list): estimate from sizes
        return _from_sizes(config, layers)
    return SizeEstimate(modules, params, nbytes, base[0], per_modules, per_params, sum(layers.values()), exact=True)


def _device_memory(device: torch.device) -> int | None:
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cpu":
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None
    return None


def _figure(n: int) -> str:
    # millions and up in the short form (one decimal), smaller counts exact
    return format_si(n, decimals=1, giga="B") if n >= 10**6 else format_count(n)


def _saved_dtype(config: Any) -> torch.dtype | None:
    """The dtype ``config.json`` says the weights were saved in (``from_pretrained`` may load them so)."""
    for name in ("dtype", "torch_dtype"):
        value = vars(config).get(name)
        if isinstance(value, str):
            value = getattr(torch, value, None)
        if isinstance(value, torch.dtype):
            return value
    return None


def check_size(
    config: Any, build: Callable[[Any], nn.Module], where: str, device: torch.device, saved: bool = False
) -> None:
    """Refuse a config whose model is too big to build (see the module docstring); cheap configs pass at once.

    ``saved``: the weights come from the directory, which may hold them in a smaller dtype than the
    one the model is built in; the memory check counts the smaller (a lower bound: no false refusal).
    """
    layers = dict(layer_counts(config))
    if device.type == "meta" and all(
        not isinstance(v, int) or v <= _CHEAP_LAYERS for v in layers.values()
    ):
        return
    size = estimate(config, build)
    if size is None:
        return
    main = max(layers, key=lambda f: layers[f] if isinstance(layers[f], int) else 0)
    about = "about " if size.exact else "at least "
    figures = (
        f"{about}{size.modules:,} modules and {_figure(size.params)} params: {size.per_layer_modules} modules "
        f"and {_figure(size.per_layer_params)} params a layer, {size.layers:,} layers"
    )
    if size.modules > MAX_MODULES:
        fits = max(1, (MAX_MODULES - size.base_modules) // max(1, size.per_layer_modules) + 1)
        raise SpecError(
            f"{where} would build {figures}; that is more than torchscope's limit of {MAX_MODULES:,} modules: "
            f"give fewer layers, e.g. --config {main}={fits}"
        )
    memory = _device_memory(device)
    nbytes = size.param_bytes
    dtype = _saved_dtype(config) if saved else None
    if dtype is not None and dtype.is_floating_point:
        nbytes = min(nbytes, size.params * dtype.itemsize)
    if memory is not None and nbytes > memory:
        raise SpecError(
            f"{where} would take {about}{format_bytes(nbytes)} of params on {device}, more than its "
            f"{format_bytes(memory)} of memory ({figures}); use --device meta, or fewer layers "
            f"(--config {main}=N)"
        )
