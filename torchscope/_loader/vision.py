"""torchvision models: their names, the arguments their weights were published with, and building them."""

from __future__ import annotations

import difflib
import inspect
import os
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from torchscope._loader.common import builder_failed, first_line
from torchscope._loader.hf import DEFAULT_LENGTH as HF_DEFAULT_LENGTH
from torchscope._loader.hf import PREFIX as HF_PREFIX
from torchscope._loader.meta import build_on_meta
from torchscope._loader.objects import import_timm
from torchscope.errors import SpecError


def torchvision_names() -> list[str]:
    import torchvision.models

    return sorted(torchvision.models.list_models())


def list_model_names(*, timm: bool = False) -> list[str]:
    """Every torchvision model name load_model resolves (and ``timm:NAME`` names with ``timm=True``).

    >>> "resnet18" in list_model_names()
    True
    """
    names = torchvision_names()
    if timm:
        timm_mod = import_timm("timm:")
        names += [f"timm:{n}" for n in timm_mod.list_models()]
    return names


def default_weights(name: str) -> Any | None:
    import torchvision.models

    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return None


def build_kwargs_for_published(name: str) -> dict[str, Any]:
    """The builder arguments that give the architecture torchvision's default weights were published for.

    ``load_model`` uses them for torchvision names (the user's ``kwargs`` win), so a state_dict
    fine-tuned from the published model fits, and ``num_params`` matches the weights' meta.

    >>> build_kwargs_for_published("vit_h_14")
    {'image_size': 518}
    >>> build_kwargs_for_published("googlenet")
    {'aux_logits': False, 'transform_input': True, 'init_weights': False}
    """
    base = name.removeprefix("quantized_")
    weights = default_weights(name)
    if base == "googlenet":
        # published without the aux heads (torchvision drops them after loading)
        return {"aux_logits": False, "transform_input": True, "init_weights": False}
    if base == "inception_v3":
        return {"aux_logits": True, "transform_input": True, "init_weights": False}
    if base.startswith("vit_") and weights is not None:
        return {"image_size": int(weights.meta["min_size"][0])}
    if name.startswith(("fcn_", "deeplabv3_")):
        # segmentation weights are published with the auxiliary classifier
        return {"aux_loss": True}
    return {}


def default_input_size(spec_or_model_name: str, batch: int = 1) -> tuple[int, ...]:
    """The input shape a model expects, from its default weights' transforms; (batch, 3, 224, 224) if unknown.

    Video models get 16 frames: ``(batch, 3, 16, H, W)``; ``hf:`` models ``(batch, 128)`` token ids.

    >>> default_input_size("inception_v3"), default_input_size("vit_h_14", batch=2)
    ((1, 3, 299, 299), (2, 3, 518, 518))
    >>> default_input_size("./net.py:Net")
    (1, 3, 224, 224)
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError(f"batch={batch!r} must be a positive integer")
    if spec_or_model_name.startswith(HF_PREFIX):
        return (batch, HF_DEFAULT_LENGTH)
    size = 224
    weights = default_weights(spec_or_model_name) if ":" not in spec_or_model_name else None
    if weights is not None:
        transforms = weights.transforms()
        crop = getattr(transforms, "crop_size", None) or getattr(transforms, "resize_size", None)
        if crop:
            size = int(crop[0])
        if type(transforms).__name__ == "VideoClassification":
            return (batch, 3, 16, size, size)
    return (batch, 3, size, size)


def cached_weights_path(name: str, weights: Any) -> Path:
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def build_torchvision(name: str, kwargs: dict[str, Any], pretrained: bool, meta: bool) -> nn.Module:
    import torchvision.models

    if name not in torchvision.models.list_models():
        raise SpecError(unknown_name_message(name))
    merged = {**build_kwargs_for_published(name), **kwargs}
    builder = torchvision.models.get_model_builder(name)
    if "weights_backbone" in inspect.signature(builder).parameters and "weights_backbone" not in kwargs:
        # detection/segmentation builders default to downloading ImageNet backbone weights
        merged["weights_backbone"] = None
    if pretrained:
        weights = default_weights(name)
        if weights is None:
            raise SpecError(f"--pretrained: {name!r} has no published weights; drop --pretrained")
        path = cached_weights_path(name, weights)
        if not path.is_file():
            raise SpecError(
                f"--pretrained: {path} not found; torchscope never downloads, so put the weights file there "
                "or pass --weights FILE"
            )
        # The file is in the hub cache, so torchvision reads it from there and downloads nothing.
        merged["weights"] = weights
        # torchvision sets the arguments its weights need; ours would clash with its checks
        for key in build_kwargs_for_published(name):
            if key not in kwargs:
                merged.pop(key, None)
    try:
        if meta:
            return build_on_meta(torchvision.models.get_model, name, **merged)
        return torchvision.models.get_model(name, **merged)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        if pretrained:
            path = cached_weights_path(name, merged["weights"])
            raise SpecError(
                f"--pretrained: {path} does not load into {name} ({first_line(exc)}); delete or replace the file"
            ) from None
        # e.g. num_classes=-5: "Trying to create tensor with negative dimension -5"
        builder_failed(name, kwargs, exc)
    except Exception as exc:
        builder_failed(name, kwargs, exc)


def unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name, torchvision_names(), n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else "list names with `torchscope models`"
    )
    return f"unknown model {name!r}; {hint}"
