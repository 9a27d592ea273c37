"""Model and weight files: TorchScript, ``torch.export`` archives, ``torch.save`` files and state_dicts."""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchscope._format import format_shape
from torchscope._loader.checkpoint import read_checkpoint, sniff, verify_zip
from torchscope._loader.common import few, first_line, kwargs_text
from torchscope._loader.objects import user_modules_importable
from torchscope._loader.safetensors_io import is_safetensors, load_safetensors
from torchscope.errors import SpecError

# Keys under which training frameworks nest the state_dict in a checkpoint dict.
NESTED_STATE_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model", "module", "net")
# Prefixes that wrappers add to every key: DataParallel/DDP, torch.compile.
WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")


def _zip_names(path: Path) -> list[str]:
    """The records of a zip archive, ``[]`` for a legacy pickle; a damaged file is a CheckpointError."""
    if sniff(path) != "zip":
        return []
    with zipfile.ZipFile(path) as archive:  # sniff opened it already: it has a readable directory
        return archive.namelist()


def torch_load(path: Path, map_location: str, unsafe_load: bool, verify: bool = True) -> Any:
    """``torch.load`` with ``weights_only=True``; a whole pickled module only with ``unsafe_load``.

    A zip archive's CRC-32s are checked first unless ``verify=False``; every failure is one
    :class:`~torchscope._loader.checkpoint.CheckpointError` line (see :mod:`.checkpoint`).
    """
    # a whole model pickles its class as `stem.Class`: the user file the spec imported provides it
    with user_modules_importable():
        return read_checkpoint(path, map_location, unsafe_load, verify)


def weights_path(value: str | os.PathLike[str]) -> Path:
    """The ``--weights`` value as an existing file, or the error that says what is wrong with it.

    >>> weights_path("")
    Traceback (most recent call last):
    torchscope.errors.SpecError: --weights is empty (or '.'); give the path of a state_dict file, or leave the option out
    """
    if str(value).strip() in {"", "."}:  # the CLI hands `--weights ''` over as Path(""), that is "."
        raise SpecError("--weights is empty (or '.'); give the path of a state_dict file, or leave the option out")
    path = Path(value)
    if path.is_dir():
        raise SpecError(f"--weights {path} is a directory; give the state_dict file in it")
    if not path.is_file():
        raise SpecError(f"weights file not found: {path}; check the --weights path")
    return path


def load_file(
    path: Path, device: torch.device, unsafe_load: bool, kwargs: dict[str, Any], verify: bool = True
) -> nn.Module:
    if path.suffix == ".py":
        raise SpecError(
            f"{path} is a Python file; name the model in it, e.g. {path}:Net or {path}:build_model"
        )
    if kwargs:
        raise SpecError(
            f"{path} is a saved model; --arg only applies to builders (got {kwargs_text(kwargs)})"
        )
    names = _zip_names(path)
    if names and verify:
        verify_zip(path)  # torch.export and TorchScript archives too: nothing reads damaged bytes
    # Meta has no storage to load into; saved programs are loaded on the CPU instead.
    real = "cpu" if device.type == "meta" else str(device)
    if any(n.endswith("/archive_format") for n in names):
        try:
            program = torch.export.load(path)
        except Exception as exc:
            raise SpecError(f"{path} is not a loadable torch.export archive ({first_line(exc)})") from None
        return program.module()
    if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
        try:
            with warnings.catch_warnings():
                # torch.jit.load warns that TorchScript is deprecated; loading old archives is our job
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location=real)
        except Exception as exc:
            raise SpecError(f"{path} is not a loadable TorchScript archive ({first_line(exc)})") from None
    obj = torch_load(path, str(device), unsafe_load, verify=False if names else verify)
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        raise SpecError(
            f"{path} holds a state_dict, which needs an architecture: give the model and the file, "
            f"e.g. `resnet18 --weights {path}` (weights= in Python)"
        )
    raise SpecError(f"{path} holds a {type(obj).__name__}, not a model or state_dict; check the file")


def extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in NESTED_STATE_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SpecError(
            f"{path} holds no state_dict (a mapping of names to tensors); check the --weights file"
        )
    state = dict(obj)
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def strip_common_prefix(
    state: dict[str, torch.Tensor], expected: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Lightning checkpoints prefix every key with the attribute that holds the model (``model.``)."""
    firsts = {k.split(".", 1)[0] for k in state}
    if len(firsts) == 1 and all("." in k for k in state):
        stripped = {k.split(".", 1)[1]: v for k, v in state.items()}
        if set(stripped) == set(expected):
            return stripped
    return state


def load_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    unsafe_load: bool = False,
    map_location: str | None = None,
    verify: bool = True,
) -> nn.Module:
    """Load a state_dict file into ``model``; a mismatch lists the missing and unexpected keys.

    The file's CRC-32s are checked first (``verify=False`` skips that): a damaged tensor is named,
    never loaded.

    A meta model takes the file's tensors as they are (``load_state_dict(assign=True)``), loaded on
    ``map_location``; by default that is meta too, so no values are read but names, shapes and dtypes
    are checked.

    >>> import tempfile, torch
    >>> f = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
    >>> torch.save(nn.Linear(2, 3).state_dict(), f)
    >>> load_weights(nn.Linear(2, 3), f).out_features
    3
    """
    path = weights_path(path)
    devices = [t.device for t in [*model.parameters(), *model.buffers()]]
    # a model with some tensors on meta takes the file's tensors as they are (assign=True) on its real
    # device: copying into a meta tensor would silently do nothing
    meta = any(d.type == "meta" for d in devices)
    device = next((d for d in devices if d.type != "meta"), devices[0] if devices else torch.device("cpu"))
    if is_safetensors(path):
        # no code in the file: no --unsafe-load question to ask
        state = load_safetensors(path, map_location or str(device))
    else:
        state = extract_state_dict(torch_load(path, map_location or str(device), unsafe_load, verify), path)
    expected = model.state_dict()
    state = strip_common_prefix(state, expected)
    tied = tied_names(model)
    # a file saved without duplicates (save_pretrained, safetensors' save_model) has one name per tied tensor
    for names in tied:
        present = [n for n in names if n in state]
        if present:
            for n in names:
                state.setdefault(n, state[present[0]])
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise SpecError(
            f"{path} does not fit {type(model).__name__}: missing keys {few(missing)}, "
            f"unexpected keys {few(unexpected)}; pick the matching architecture or --arg values"
        )
    wrong = [
        f"{k} {format_shape(state[k].shape)} vs {format_shape(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise SpecError(
            f"{path} does not fit {type(model).__name__}: shape mismatch at {few(wrong)} (file vs model); "
            "pick the matching architecture or --arg values (e.g. num_classes)"
        )
    as_ints = [
        f"{k} {_dtype(state[k])} vs {_dtype(v)}"
        for k, v in expected.items()
        if (v.is_floating_point() or v.is_complex()) and not (state[k].is_floating_point() or state[k].is_complex())
    ]
    if as_ints:
        # loading would round every weight to an integer (or fail on requires_grad): never right
        raise SpecError(
            f"{path} stores float tensors as integers at {few(as_ints)} (file vs model); the file was "
            "converted or damaged: save the state_dict again from the trained model"
        )
    if meta:
        # assign=True takes the file's tensors as they are; cast floats to the model's dtypes, as a
        # copying load_state_dict would
        state = {
            k: v.to(expected[k].dtype) if v.is_floating_point() and v.dtype != expected[k].dtype else v
            for k, v in state.items()
        }
    model.load_state_dict(state, strict=True, assign=meta)
    if meta:
        _retie(model, tied)  # assign=True put a separate tensor under each tied name
    return model


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def tied_names(model: nn.Module) -> list[list[str]]:
    """Groups of parameter names that are one tensor (tied weights), each group in registration order."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _retie(model: nn.Module, tied: list[list[str]]) -> None:
    for names in tied:
        first = model.get_parameter(names[0])
        for name in names[1:]:
            owner, _, attr = name.rpartition(".")
            model.get_submodule(owner)._parameters[attr] = first
