"""Hugging Face models: ``hf:MODEL_TYPE`` and ``hf:DIR``, never from the network.

- ``hf:MODEL_TYPE`` (``hf:bert``, ``hf:gpt2``, ``hf:llama``...): that model type's default config
  (``AutoConfig.for_model``), nothing downloaded.
- ``hf:DIR``: a local model directory (``config.json``; weights in ``model.safetensors``, sharded
  ``model-0000x-of-0000y.safetensors`` with their index, or ``pytorch_model.bin``). A directory with
  ``adapter_config.json`` (PEFT) puts the adapter on top of its base: the same directory when it
  also has ``config.json``, else the local directory the adapter config's
  ``base_model_name_or_path`` names.

``config`` overrides config fields (each must exist in the config), ``task`` picks the head (see
:data:`TASKS`; default: the directory's ``architectures``, else ``causal-lm`` for decoder-only
model types and ``base`` for the rest), ``num_labels`` sizes a classifier. On meta no value is read:
``config.json``, the adapter's config and the weights' headers are, and the weights are checked
against the model as a real run checks them (:mod:`.hf_weights`). A directory's model is in eval mode
and a model type's in train mode, on every device. Configs are checked (:mod:`.hf_config`) and
bounded (:mod:`.hf_size`) before anything is built. Every transformers call runs offline
(``HF_HUB_OFFLINE=1``, ``local_files_only=True``). transformers and peft are imported only in the ``hf`` modules.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchscope._adapters.targets import unmatched_targets_message
from torchscope._format import format_shape
from torchscope._loader.common import BuildRequest
from torchscope._loader.hf_config import config_from_dir, config_from_type, set_num_labels
from torchscope._loader.hf_env import import_peft, import_transformers, library_detail, offline, reraise_ours
from torchscope._loader.hf_size import check_size
from torchscope._loader.hf_weights import check_fit, file_shapes, fit_from_info, fit_on_meta, weight_files
from torchscope._loader.meta import init_on_meta
from torchscope._loader.safetensors_io import read_header
from torchscope.errors import SpecError

PREFIX = "hf:"
# token ids per sequence when a command is given no --input-size
DEFAULT_LENGTH = 128
# task -> transformers Auto class
TASKS: dict[str, str] = {
    "base": "AutoModel",
    "causal-lm": "AutoModelForCausalLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
}
# peft's task_type -> our task
_PEFT_TASKS: dict[str, str] = {
    "CAUSAL_LM": "causal-lm",
    "SEQ_CLS": "sequence-classification",
    "TOKEN_CLS": "token-classification",
    "FEATURE_EXTRACTION": "base",
}
def model_types() -> list[str]:
    """Every model type ``hf:MODEL_TYPE`` accepts (transformers' ``CONFIG_MAPPING``)."""
    return sorted(import_transformers().CONFIG_MAPPING.keys())


# ---------------------------------------------------------------------------------------------
# building


def _default_task(config: Any) -> str:
    from transformers.models.auto import modeling_auto

    model_type = getattr(config, "model_type", "")
    decoder_only = (
        model_type in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and not getattr(config, "is_encoder_decoder", False)
    )
    return "causal-lm" if decoder_only else "base"


def _saved_class(config: Any) -> Any:
    """The class a saved model names (``architectures``: LlamaForCausalLM...), or ``None``."""
    tf = import_transformers()
    for arch in getattr(config, "architectures", None) or ():
        cls = getattr(tf, str(arch), None)
        if isinstance(cls, type):
            return cls
    return None


def _model_class(config: Any, task: str | None, where: str) -> Any:
    tf = import_transformers()
    if task is None:
        saved = _saved_class(config)
        if saved is not None:
            return saved
        task = _default_task(config)
    if task not in TASKS:
        close = difflib.get_close_matches(task, list(TASKS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(TASKS)}"
        raise SpecError(f"--task {task!r} is not a task; {hint}")
    return getattr(tf, TASKS[task])


def _instantiate(cls: Any, config: Any, meta: bool, where: str, task: str | None) -> nn.Module:
    def build() -> nn.Module:
        with offline():
            if hasattr(cls, "from_config"):
                return cls.from_config(config)  # type: ignore[no-any-return]
            return cls(config)  # type: ignore[no-any-return]

    try:
        if meta:
            # transformers skips its weight init under a meta default device (it would cost ~0.5 s
            # of meta-tensor decompositions for a 7B model); init_on_meta catches what is made elsewhere
            with torch.device("meta"), init_on_meta():
                return build()
        return build()
    except ValueError as exc:
        reraise_ours(exc)
        if "Unrecognized configuration class" in str(exc):
            tasks = [t for t, auto in TASKS.items() if _has_head(auto, config)]
            raise SpecError(
                f"{where} has no {task or 'default'} head in transformers; use --task {' or '.join(tasks) or 'base'}"
            ) from None
        raise SpecError(f"building {where} failed: {library_detail(exc)}; check the --config values") from None
    except Exception as exc:  # transformers' model code on the user's config values
        reraise_ours(exc)
        raise SpecError(f"building {where} failed: {library_detail(exc)}; check the --config values") from None


def _has_head(auto: str, config: Any) -> bool:
    mapping = getattr(import_transformers(), auto)._model_mapping
    try:
        mapping[type(config)]
    except KeyError:
        return False
    return True


def _task_of(cls: Any) -> str:
    """The task a transformers class is the head for (``BertForSequenceClassification``: a classifier)."""
    name = getattr(cls, "__name__", "")
    for suffix, task in (
        ("ForSequenceClassification", "sequence-classification"),
        ("ForTokenClassification", "token-classification"),
        ("ForCausalLM", "causal-lm"),
        ("LMHeadModel", "causal-lm"),
    ):
        if name.endswith(suffix):
            return task
    return "base"


def _from_pretrained(cls: Any, path: Path, config: Any, unsafe_load: bool) -> tuple[nn.Module, dict[str, Any]]:
    # a pytorch_model.bin that pickles objects loads only with --unsafe-load, as a --weights file does
    unsafe = {"weights_only": False} if unsafe_load else {}
    with offline():
        try:
            # shapes that differ are reported in the loading info, not raised, so that check_fit names them
            # (and lets a new --num-labels classifier through) with the words it uses on meta
            model, info = cls.from_pretrained(
                str(path), config=config, local_files_only=True, ignore_mismatched_sizes=True,
                output_loading_info=True, **unsafe,
            )
        except Exception as exc:  # transformers and safetensors (SafetensorError) on the user's files
            reraise_ours(exc)
            # load_state_dict's first line is a heading; the size mismatch below it is the news
            lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
            detail = lines[0][:300] if lines else library_detail(exc)
            raise SpecError(
                f"the weights in {path} do not load into {cls.__name__}: {detail}; "
                "check the directory (or the --config/--task values)"
            ) from None
    return model, info


def _base_from_dir(path: Path, request: BuildRequest, task: str | None) -> nn.Module:
    """A model directory's model, in eval mode on every device (as ``from_pretrained`` leaves it).

    The weights' headers, keys and shapes are checked on meta as on a real device (:mod:`.hf_weights`).
    """
    config = config_from_dir(path, request.config)
    cls = _model_class(config, task, str(path))
    set_num_labels(config, request.num_labels, task or _task_of(cls))
    where = str(path)
    saved_weights = bool(weight_files(path))
    check_size(config, lambda c: _instantiate(cls, c, True, where, task), where, request.device, saved_weights)
    shapes = file_shapes(path, request.unsafe_load)  # every header, shard and index checked before anything is built
    saved = cls is _saved_class(config)  # the class the directory was saved as: every key must be there
    new_head = request.num_labels is not None
    if shapes is None:
        model = _instantiate(cls, config, request.meta, where, task)
    elif request.meta:
        model = _instantiate(cls, config, True, where, task)
        check_fit(fit_on_meta(model, shapes), model, path, saved_class=saved, new_head=new_head)
    else:
        model, info = _from_pretrained(cls, path, config, request.unsafe_load)
        check_fit(fit_from_info(model, info), model, path, saved_class=saved, new_head=new_head)
        model = model.to(request.device)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# adapters


def _adapter_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / "adapter_config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}/adapter_config.json does not load: {exc}; check the file") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}/adapter_config.json is not a JSON object; check the file")
    return data


def _adapter_base(path: Path, adapter: Mapping[str, Any]) -> Path:
    if (path / "config.json").is_file():
        return path
    base = adapter.get("base_model_name_or_path")
    if not base:
        raise SpecError(
            f"{path} holds an adapter without a base (no config.json, no base_model_name_or_path); "
            "put the base model's config.json beside it"
        )
    for candidate in (Path(str(base)).expanduser(), path / str(base), path.parent / str(base)):
        if (candidate / "config.json").is_file():
            return candidate
    raise SpecError(
        f"the adapter in {path} is for base {base!r}, which is not a local directory; torchscope never "
        f"downloads: download it first (hf download {base} --local-dir DIR) and set base_model_name_or_path "
        "in adapter_config.json to DIR"
    )


def _adapter_file_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    file = path / "adapter_model.safetensors"
    if file.is_file():
        return {k: v.shape for k, v in read_header(file).items()}
    return None


def _check_adapter_fits(model: nn.Module, path: Path, base: Path, adapter_name: str) -> None:
    """Every tensor of the adapter file must be an adapter tensor of the model, with its shape."""
    shapes = _adapter_file_shapes(path)
    if shapes is None:
        return
    ours: dict[str, tuple[int, ...]] = {}
    tag = f".{adapter_name}."
    for name, p in model.named_parameters():
        if tag in name:
            ours[name.replace(tag, ".")] = tuple(p.shape)
    wrong = [f"{k} {format_shape(s)} vs {format_shape(ours[k])}" for k, s in shapes.items() if k in ours and ours[k] != s]
    unknown = [k for k in shapes if k not in ours and not k.endswith(tuple(_saved_suffixes(ours)))]
    if wrong or unknown:
        detail = f"shape differs at {wrong[0]} (file vs model)" if wrong else f"no module for {unknown[0]}"
        raise SpecError(
            f"the adapter in {path} does not fit the base {base}: {detail}; give the base it was trained on"
        )


def _saved_suffixes(ours: Mapping[str, Any]) -> list[str]:
    # modules_to_save copies are saved under the original module's name (".modules_to_save" dropped)
    return [k.split(".modules_to_save.", 1)[1] for k in ours if ".modules_to_save." in k]


def _with_adapter(path: Path, request: BuildRequest) -> nn.Module:
    adapter = _adapter_config(path)
    base_dir = _adapter_base(path, adapter)
    task = request.task or _PEFT_TASKS.get(str(adapter.get("task_type") or ""), None)
    base = _base_from_dir(base_dir, request, task)
    _adapter_file_shapes(path)  # its header checked on every device, before peft reads it
    peft = import_peft()
    with offline():
        try:
            config = peft.PeftConfig.from_pretrained(str(path), local_files_only=True)
            # saved adapters say inference_mode=True (frozen); torchscope looks at fine-tuning
            config.inference_mode = False
            if request.meta:
                # the structure only: adapter layers on meta, no weights read
                with init_on_meta():
                    model = peft.get_peft_model(base, config)
            else:
                model = peft.PeftModel.from_pretrained(base, str(path), config=config, is_trainable=True)
        except Exception as exc:  # peft, transformers and safetensors on the user's files
            reraise_ours(exc)
            # target_modules that match nothing: name the closest module names (peft does not)
            unmatched = unmatched_targets_message(base, adapter.get("target_modules"))
            if unmatched is not None:
                raise SpecError(f"the adapter in {path}: {unmatched}; fix target_modules in adapter_config.json") from None
            # load_state_dict's first line is a heading; the size mismatch below it is the news
            lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
            detail = lines[0][:300] if lines else library_detail(exc)
            raise SpecError(
                f"the adapter in {path} does not fit the base {base_dir}: {detail}; give the base it was trained on"
            ) from None
    _check_adapter_fits(model, path, base_dir, "default")
    return model.eval()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# the source


def _not_found(name: str) -> SpecError:
    types = model_types()
    close = difflib.get_close_matches(name.lower(), types, n=3, cutoff=0.6)
    if "/" in name or "-" in name or "." in name:
        return SpecError(
            f"hf:{name} is neither a local directory nor a model type; torchscope never downloads: "
            f"download it first (hf download {name} --local-dir DIR) and give hf:DIR"
        )
    hint = (
        f"did you mean {', '.join('hf:' + c for c in close)}?"
        if close
        else "see transformers' CONFIG_MAPPING"
    )
    return SpecError(f"unknown model type {name!r}; {hint} (or give hf:DIR, a local model directory)")


def build_hf(request: BuildRequest) -> nn.Module:
    """The model an ``hf:`` spec names (see the module docstring).

    >>> build_hf(BuildRequest("hf:bert", {}, False, True, torch.device("meta"), False)).num_parameters()
    109482240
    """
    name = request.spec[len(PREFIX) :].strip()
    if not name:
        raise SpecError(
            "malformed spec 'hf:'; write hf:MODEL_TYPE (hf:llama) or hf:DIR (a local model directory)"
        )
    if request.kwargs:
        raise SpecError("--arg does not apply to hf: models; set config fields with --config key=value")
    if request.pretrained:
        raise SpecError(
            "--pretrained does not apply to hf: models; give hf:DIR, a directory with the weights"
        )
    tf = import_transformers()
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            return _with_adapter(path, request)
        if not (path / "config.json").is_file():
            raise SpecError(
                f"{path} has no config.json; give a transformers model directory (save_pretrained) or a model type"
            )
        return _base_from_dir(path, request, request.task)
    if path.exists():
        raise SpecError(
            f"hf:{name} is a file; hf: takes a model directory (with config.json) or a model type"
        )
    if name not in tf.CONFIG_MAPPING:
        raise _not_found(name)
    config = config_from_type(name, request.config)
    where = f"hf:{name}"
    cls = _model_class(config, request.task, where)
    task = request.task or _default_task(config)
    set_num_labels(config, request.num_labels, task)
    check_size(config, lambda c: _instantiate(cls, c, True, where, task), where, request.device)
    # a model type is built, as from_config builds it: train mode, on every device
    return _instantiate(cls, config, request.meta, where, task).train()
