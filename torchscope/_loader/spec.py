"""The entry point: which source a spec names, then build, place and load weights."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchscope._loader.common import SPEC_FORMS, BuildRequest, check_device, few
from torchscope._loader.files import load_file, load_weights, weights_path
from torchscope._loader.hf import PREFIX as HF_PREFIX
from torchscope._loader.hf import build_hf
from torchscope._loader.objects import build_attr, build_timm
from torchscope._loader.vision import build_torchvision
from torchscope._recursion import WALK_PER_LEVEL, check_depth
from torchscope.errors import SpecError


def _timm(request: BuildRequest) -> nn.Module:
    return build_timm(request.spec, request.kwargs, request.pretrained, request.meta)


# Sources named by a prefix (``timm:NAME``), tried before any other form. A new source is one module
# beside the others in this package and one entry here.
PREFIX_SOURCES: dict[str, Callable[[BuildRequest], nn.Module]] = {
    "timm:": _timm,
    HF_PREFIX: build_hf,
}


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or Path(spec).suffix.lower() in {".pt", ".pth", ".pt2", ".ts", ".bin", ".ckpt", ".jit"}
    )


@contextmanager
def current_folder_importable() -> Iterator[None]:
    """While the block runs, modules resolve from the current folder too, as ``python -m`` resolves them.

    The ``torchscope`` console script starts with its own folder on ``sys.path``, not the current
    one, so ``mypkg.models:build_net`` run from the folder that holds ``mypkg/`` would not import.
    The folder goes first (as with ``python -m``) and comes off again afterwards.
    """
    try:
        here = os.getcwd()
    except OSError:  # the current folder was removed
        yield
        return
    present = any(os.path.abspath(p or ".") == here for p in sys.path if isinstance(p, str))
    if not present:
        sys.path.insert(0, here)
    try:
        yield
    finally:
        if not present and here in sys.path:
            sys.path.remove(here)


def load_model(
    spec: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    unsafe_load: bool = False,
    pretrained: bool = False,
    kwargs: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    task: str | None = None,
    num_labels: int | None = None,
    verify: bool = True,
) -> nn.Module:
    """Build or load the model ``spec`` names, optionally load a state_dict, and place it on ``device``.

    ``device="meta"`` allocates nothing and runs no init, for any builder. ``config`` (field
    overrides), ``task`` and ``num_labels`` apply to ``hf:`` specs (see :func:`build_hf`).
    ``verify=False`` (``--no-verify``) skips checking the CRC-32s of checkpoint archives.

    Args:
        spec: A torchvision name (``"resnet18"``), ``"timm:NAME"``, ``"hf:TYPE"``, ``"path/net.py:Net"``
            or a checkpoint file.
        weights: A state_dict file (``.pt``, ``.pth``, ``.safetensors``) to load.
        device: Where to put the model; ``"meta"`` allocates nothing.
        unsafe_load: Allow files that pickle a whole module (runs code from the file).
        pretrained: Load torchvision's default weights from the local torch hub cache.
        kwargs: Keyword arguments for the builder.
        config: Config field overrides for ``hf:`` specs.
        task: The ``hf:`` task (``"sequence-classification"``, ...).
        num_labels: Labels of an ``hf:`` classifier.
        verify: Check the CRC-32s of checkpoint archives.

    Returns:
        The model, on ``device``.

    Raises:
        SpecError: An unknown spec (with the closest names), a missing or damaged file, or weights
            that do not fit the model.

    >>> load_model("resnet18", device="meta").fc
    Linear(in_features=512, out_features=1000, bias=True)
    >>> load_model("resnet1800")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    torchscope.errors.SpecError: unknown model 'resnet1800'; did you mean 'resnet18', ...?
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"model spec {spec!r} is empty; use {SPEC_FORMS}")
    spec = spec.strip()
    dev = check_device(device)
    meta = dev.type == "meta"
    kw = dict(kwargs or {})
    hf = {"config": dict(config or {}), "task": task, "num_labels": num_labels}
    if not spec.startswith(HF_PREFIX) and (config or task is not None or num_labels is not None):
        given = "config" if config else "task" if task is not None else "num_labels"
        raise SpecError(f"{given}= (--{given.replace('_', '-')}) only applies to hf: models, not {spec!r}")
    if weights is not None:
        weights = weights_path(weights)
    with current_folder_importable():  # modules named by the spec, and classes a pickle names
        return _load(spec, weights, dev, meta, kw, pretrained, unsafe_load, hf, verify)


def _load(
    spec: str,
    weights: Path | None,
    dev: torch.device,
    meta: bool,
    kw: dict[str, Any],
    pretrained: bool,
    unsafe_load: bool,
    hf: dict[str, Any],
    verify: bool,
) -> nn.Module:
    if ":" in spec or not Path(spec).is_file():
        if weights is not None and not meta:
            # Build without init cost, then take the file's tensors as they are (assign=True).
            model = _build(spec, kw, pretrained, meta=True, device=dev, unsafe_load=unsafe_load, hf=hf)
            check_depth(model, per_level=WALK_PER_LEVEL)  # one line, not a RecursionError, if too deep
            if not any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
                model = to_device(model, spec, dev)  # a module instance: already real
                return load_weights(model, weights, unsafe_load=unsafe_load, verify=verify)
            load_weights(model, weights, unsafe_load=unsafe_load, map_location=str(dev), verify=verify)
            if not any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
                return model
            # non-persistent buffers are not in the file: build for real and copy the weights in
            verify = False  # the file was just checked
    model = _build(spec, kw, pretrained, meta, dev, unsafe_load, hf=hf, verify=verify)
    check_depth(model, per_level=WALK_PER_LEVEL)
    if not meta:
        model = to_device(model, spec, dev)
    elif any(not t.is_meta for t in [*model.parameters(), *model.buffers()]) and not isinstance(
        model, torch.jit.ScriptModule
    ):
        model = model.to("meta")
    if weights is not None:
        load_weights(model, weights, unsafe_load=unsafe_load, verify=verify)
    return model


def to_device(model: nn.Module, spec: str, device: torch.device) -> nn.Module:
    """``model.to(device)``; a model with tensors left on meta cannot run for real: say which, and the fix."""
    if isinstance(model, torch.jit.ScriptModule):
        return model.to(device)
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    on_meta = [name for name, t in named if t.is_meta]
    if on_meta:
        real = sorted({str(t.device) for _, t in named if not t.is_meta})
        rest = f"the rest on {', '.join(real)}" if real else "no real tensor at all"
        raise SpecError(
            f"{spec} built a model with {len(on_meta)} of {len(named)} tensors on the meta device "
            f"({few(on_meta, 3)}; {rest}), which a {device.type} run cannot use: create them on a real device "
            "in the model code, give --weights FILE that holds them, or pass --device meta"
        )
    return model.to(device)


def _build(
    spec: str,
    kw: dict[str, Any],
    pretrained: bool,
    meta: bool,
    device: torch.device,
    unsafe_load: bool,
    hf: Mapping[str, Any] | None = None,
    verify: bool = True,
) -> nn.Module:
    for prefix, source in PREFIX_SOURCES.items():
        if spec.startswith(prefix):
            return source(BuildRequest(spec, kw, pretrained, meta, device, unsafe_load, **(hf or {})))
    if ":" in spec:
        if pretrained:
            raise SpecError(f"--pretrained only reads torchvision weights; for {spec!r} pass --weights FILE")
        return build_attr(spec, kw, meta)
    if Path(spec).is_file():
        if pretrained:
            raise SpecError(f"--pretrained only applies to torchvision names, not the file {spec!r}")
        return load_file(Path(spec), device, unsafe_load, kw, verify)
    if _looks_like_path(spec):
        raise SpecError(f"file not found: {spec}; check the path (or give a torchvision name)")
    if not spec.replace("_", "").isalnum():
        raise SpecError(f"malformed spec {spec!r}; use {SPEC_FORMS}")
    return build_torchvision(spec, kw, pretrained, meta)
