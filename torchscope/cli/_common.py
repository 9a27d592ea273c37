"""What every command shares: loading the model, and checking ``--device`` and ``--input-size``.

A command is parse -> load -> collect -> emit. The exit-code contract is applied by the app itself
(:mod:`torchscope.cli._exit`), the options are declared once in :mod:`torchscope.cli._options`,
value grammars are parsed by :mod:`torchscope._parsing`, and output goes through
:mod:`torchscope.cli._output`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from torchscope._format import format_bytes
from torchscope._parsing import (
    Shape,
    dtype_name,
    input_bytes,
    parse_device,
    parse_input_size,
    parse_kwargs,
    split_patterns,
)
from torchscope.cli._sets import FreezeSet, InputSet, LoadSet
from torchscope.errors import SpecError

if TYPE_CHECKING:
    from torch import nn


def load_cli_model(
    load: LoadSet, frozen: FreezeSet | None = None, *, seed: int | None = None, device: str | None = None
) -> nn.Module:
    """Load the model the loading options describe (on ``device``, else ``--device``), then freeze.

    ``--no-verify`` skips the checkpoint's CRC-32s. ``seed`` (``--seed``) seeds every random number
    generator before the model is built, so its random initialisation and the inputs drawn after it
    are the same in every run.
    """
    from torchscope._freeze import freeze as do_freeze
    from torchscope._freeze import freeze_backbone as do_freeze_backbone
    from torchscope._freeze import unfreeze as do_unfreeze
    from torchscope._loader import load_model

    frozen = frozen or FreezeSet()
    # parsed before the (slow) load, so a bad value fails at once
    device = check_device(device or load.device)
    kwargs = parse_kwargs(load.arg)
    hf_config = parse_kwargs(load.config, option="--config")
    freeze_patterns = split_patterns(frozen.freeze, option="--freeze")
    unfreeze_patterns = split_patterns(frozen.unfreeze, option="--unfreeze")
    if seed is not None:
        seed_everything(seed)
    model = load_model(
        load.model, weights=load.weights, device=device, unsafe_load=load.unsafe_load, pretrained=load.pretrained,
        kwargs=kwargs, config=hf_config, task=load.task, num_labels=load.num_labels, verify=not load.no_verify,
    )  # fmt: skip
    if frozen.freeze_backbone:
        do_freeze_backbone(model)
    if freeze_patterns:
        do_freeze(model, *freeze_patterns)
    if unfreeze_patterns:
        do_unfreeze(model, *unfreeze_patterns)
    return model


def load_inputs(load: LoadSet, inputs: InputSet, *, device: str | None = None, batch: int = 1) -> list[Shape]:
    """``--input-size`` of the loaded model's command (see :func:`input_sizes`), on ``device`` or ``--device``."""
    return input_sizes(load.model, inputs.input_size, device=device or load.device, dtype=inputs.dtype, batch=batch)


def check_seed(seed: int) -> int:
    """``--seed`` checked: an integer that every generator takes (0 to 2**63 - 1)."""
    if not 0 <= seed < 2**63:
        raise SpecError(f"--seed {seed} is out of range; use an integer from 0 to 2**63 - 1, e.g. --seed 0")
    return seed


def seed_everything(seed: int) -> None:
    """Seed torch (every device), Python's ``random`` and, if it is loaded, NumPy, for a repeatable run."""
    import random

    import torch

    torch.manual_seed(check_seed(seed))
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % 2**32)


def input_sizes(
    model: str, text: str | None, *, device: str = "cpu", dtype: str | None = None, batch: int = 1
) -> list[Shape]:
    """``--input-size`` parsed (or the model family's default shape), checked to fit in memory.

    An empty value is an error, not the default. On a device with memory (not ``meta``), inputs
    that alone need more bytes than the device has are refused before anything is allocated.
    """
    from torchscope._loader import default_input_size

    device = check_device(device)
    if dtype is not None:
        dtype_name(dtype)
    sizes = parse_input_size(text) if text is not None else [default_input_size(model, batch=batch)]
    if device != "meta":
        check_inputs_fit(sizes, dtype, device)
    return sizes


def device_memory(device: str) -> int | None:
    """Bytes of memory ``device`` has (the machine's RAM for ``cpu``), or ``None`` if unknown."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
        try:
            return int(torch.cuda.get_device_properties(int(index or 0)).total_memory)
        except (RuntimeError, ValueError, AssertionError):
            return None
    return None


def check_inputs_fit(sizes: list[Shape], dtype: str | None, device: str) -> None:
    """Refuse inputs that alone need more memory than ``device`` has, naming the bytes."""
    need = input_bytes(sizes, dtype)
    have = device_memory(device)
    if have is not None and need > have:
        raise SpecError(
            f"--input-size {';'.join(','.join(map(str, s)) for s in sizes)} needs {format_bytes(need)} for the "
            f"inputs alone, more than the {format_bytes(have)} of {device}; use a smaller shape or batch, "
            "or run `torchscope memory` to see what a run needs"
        )


def check_device(device: str) -> str:
    """``--device`` checked: a device name that this machine has (``meta`` and ``cpu`` always)."""
    device = parse_device(device)
    kind, _, index = device.partition(":")
    if kind in ("cpu", "meta"):
        return device
    import torch

    backend: Any = torch.backends.mps if kind == "mps" else getattr(torch, kind, None)
    available = backend is not None and hasattr(backend, "is_available") and backend.is_available()
    if not available:
        raise SpecError(
            f"--device {device!r}: this machine has no {kind} device (or torch was built without it); use --device cpu"
        )
    count = backend.device_count() if hasattr(backend, "device_count") else 1  # mps: one device
    if index and int(index) >= count:
        raise SpecError(
            f"--device {device!r}: there are {count} {kind} device(s), numbered from 0; use {kind}:0"
        )
    return device
