"""Turn a model spec into an ``nn.Module``: torchvision names, timm, Python attributes and files.

Specs, tried in this order:

- ``timm:NAME``: ``timm.create_model(NAME, **kwargs)``.
- ``path/to/file.py:attr`` and ``package.module:attr``: attr is an ``nn.Module`` subclass, a
  factory function or a module instance.
- an existing file: a TorchScript archive, a ``torch.export`` ``.pt2`` archive, or a ``torch.save``
  file holding a whole module (only with ``unsafe_load=True``). A file holding a state_dict needs an
  architecture: give it as ``weights=`` to a spec that builds one.
- a torchvision name (``torchvision.models.list_models()``), built as its default weights were
  published (see :func:`build_kwargs_for_published`).

``device="meta"`` builds without memory and without init cost, for every builder: parameters and
buffers are moved to meta as they are registered, so builders that compute their architecture from
real tensors (regnet) still work.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import pickle
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from torchscope.errors import SpecError

SPEC_FORMS = "NAME (a torchvision model), timm:NAME, package.module:attr or path/to/file.py:attr"
# Keys under which training frameworks nest the state_dict in a checkpoint dict.
_NESTED_STATE_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model", "module", "net")
# Prefixes that wrappers add to every key: DataParallel/DDP, torch.compile.
_WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")


# ---------------------------------------------------------------------------------------------
# meta device


_INIT_FUNCTIONS: tuple[str, ...] = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)


@contextmanager
def init_on_meta() -> Iterator[None]:
    """Build modules with every parameter and buffer on the meta device.

    Unlike ``with torch.device("meta")``, tensors the builder computes with stay real; only what a
    module registers moves to meta (the approach of accelerate's ``init_empty_weights``). Init
    functions then run on meta tensors and cost nothing.

    >>> with init_on_meta():
    ...     layer = nn.Linear(4096, 4096)
    >>> layer.weight.device
    device(type='meta')
    """
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register_parameter(self, name, param)
        p = self._parameters.get(name)
        # Lazy modules keep their uninitialized parameters; they have no shape to allocate yet.
        if p is None or p.is_meta or isinstance(p, nn.parameter.UninitializedParameter):
            return
        extra = dict(p.__dict__)
        extra.pop("requires_grad", None)
        new = type(p)(p.to("meta"), requires_grad=p.requires_grad)
        new.__dict__.update(extra)
        self._parameters[name] = new

    def meta_buffer(self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        if tensor is not None and not isinstance(tensor, nn.parameter.UninitializedBuffer):
            tensor = tensor.to("meta")
        register_buffer(self, name, tensor, persistent=persistent)

    # Init functions on meta tensors do nothing, but still dispatch through Python decompositions
    # (about 5 ms a call): skip them for meta tensors.
    originals = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS if hasattr(nn.init, name)}

    def skip_on_meta(func: Callable[..., Any]) -> Callable[..., Any]:
        def init(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
            return func(tensor, *args, **kwargs)

        return init

    nn.Module.register_parameter = meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = meta_buffer  # type: ignore[method-assign]
    for name, func in originals.items():
        setattr(nn.init, name, skip_on_meta(func))
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
        for name, func in originals.items():
            setattr(nn.init, name, func)


def build_on_meta(builder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``builder`` under :func:`init_on_meta`; if an op has no meta kernel, build for real and move.

    The fallback costs memory and init time once, but a model that builds at all can be inspected.

    >>> build_on_meta(nn.Linear, 2, 3).weight.is_meta
    True
    """
    try:
        with init_on_meta():
            return builder(*args, **kwargs)
    except (NotImplementedError, RuntimeError) as exc:
        if "meta" not in str(exc).lower():
            raise
    model = builder(*args, **kwargs)
    return model.to("meta") if isinstance(model, nn.Module) else model


def _check_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise SpecError(
                f"device {str(device)!r} is not available on this machine (no CUDA); use cpu or meta"
            )
        return dev
    except (RuntimeError, TypeError, ValueError):
        raise SpecError(
            f"device {str(device)!r} is not a torch device; use cpu, cuda, cuda:0 or meta"
        ) from None


# ---------------------------------------------------------------------------------------------
# torchvision


def _torchvision_names() -> list[str]:
    import torchvision.models

    return sorted(torchvision.models.list_models())


def list_model_names(*, timm: bool = False) -> list[str]:
    """Every torchvision model name load_model resolves (and ``timm:NAME`` names with ``timm=True``).

    >>> "resnet18" in list_model_names()
    True
    """
    names = _torchvision_names()
    if timm:
        timm_mod = _import_timm("timm:")
        names += [f"timm:{n}" for n in timm_mod.list_models()]
    return names


def _default_weights(name: str) -> Any | None:
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
    weights = _default_weights(name)
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

    Video models get 16 frames: ``(batch, 3, 16, H, W)``.

    >>> default_input_size("inception_v3"), default_input_size("vit_h_14", batch=2)
    ((1, 3, 299, 299), (2, 3, 518, 518))
    >>> default_input_size("./net.py:Net")
    (1, 3, 224, 224)
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SpecError(f"batch={batch!r} must be a positive integer")
    size = 224
    weights = _default_weights(spec_or_model_name) if ":" not in spec_or_model_name else None
    if weights is not None:
        transforms = weights.transforms()
        crop = getattr(transforms, "crop_size", None) or getattr(transforms, "resize_size", None)
        if crop:
            size = int(crop[0])
        if type(transforms).__name__ == "VideoClassification":
            return (batch, 3, 16, size, size)
    return (batch, 3, size, size)


def _cached_weights_path(name: str, weights: Any) -> Path:
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _build_torchvision(name: str, kwargs: dict[str, Any], pretrained: bool, meta: bool) -> nn.Module:
    import torchvision.models

    if name not in torchvision.models.list_models():
        raise SpecError(_unknown_name_message(name))
    merged = {**build_kwargs_for_published(name), **kwargs}
    builder = torchvision.models.get_model_builder(name)
    if "weights_backbone" in inspect.signature(builder).parameters and "weights_backbone" not in kwargs:
        # detection/segmentation builders default to downloading ImageNet backbone weights
        merged["weights_backbone"] = None
    if pretrained:
        weights = _default_weights(name)
        if weights is None:
            raise SpecError(f"--pretrained: {name!r} has no published weights; drop --pretrained")
        path = _cached_weights_path(name, weights)
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
        if not pretrained:
            raise
        path = _cached_weights_path(name, merged["weights"])
        raise SpecError(
            f"--pretrained: {path} does not load into {name} ({_first_line(exc)}); delete or replace the file"
        ) from None
    except TypeError as exc:
        raise SpecError(
            f"building {name}({_kwargs_text(kwargs)}) failed: {exc}; check the --arg values"
        ) from None
    except ValueError as exc:
        if kwargs:
            raise SpecError(
                f"building {name}({_kwargs_text(kwargs)}) failed: {exc}; check the --arg values"
            ) from None
        raise


def _unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name, _torchvision_names(), n=3, cutoff=0.6)
    hint = (
        f"did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else "list names with `torchscope models`"
    )
    return f"unknown model {name!r}; {hint}"


def _kwargs_text(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


# ---------------------------------------------------------------------------------------------
# timm and Python attributes


def _import_timm(spec: str) -> Any:
    try:
        import timm
    except ImportError:
        raise SpecError(f"{spec!r} needs timm, which is not installed; pip install timm") from None
    return timm


def _build_timm(spec: str, kwargs: dict[str, Any], pretrained: bool, meta: bool) -> nn.Module:
    name = spec.removeprefix("timm:")
    if not name or ":" in name:
        raise SpecError(f"malformed spec {spec!r}; write timm:NAME, e.g. timm:resnet18")
    if pretrained:
        raise SpecError(f"--pretrained only reads torchvision weights; for {spec!r} pass --weights FILE")
    timm = _import_timm(spec)
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join('timm:' + c for c in close)}?" if close else "see timm.list_models()"
        raise SpecError(f"unknown timm model {name!r}; {hint}")
    try:
        if meta:
            return build_on_meta(timm.create_model, name, pretrained=False, **kwargs)
        return timm.create_model(name, pretrained=False, **kwargs)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise SpecError(
            f"building timm:{name}({_kwargs_text(kwargs)}) failed: {exc}; check the --arg values"
        ) from None


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise SpecError(f"file not found: {path}; check the path in the spec")
    module_name = f"_torchscope_user_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import {path}; it must be a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # so that the file can import its siblings, as `python file.py` would allow
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise SpecError(f"importing {path} failed: {type(exc).__name__}: {exc}; fix the file") from None
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def _import_module(dotted: str) -> Any:
    try:
        return importlib.import_module(dotted)
    except ImportError as exc:
        raise SpecError(
            f"cannot import {dotted!r} ({exc}); install it or run from the directory that holds it"
        ) from None


def _build_attr(spec: str, kwargs: dict[str, Any], meta: bool) -> nn.Module:
    where, _, attr = spec.rpartition(":")
    if not where or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise SpecError(f"malformed spec {spec!r}; use {SPEC_FORMS}")
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _import_file(Path(where))
    else:
        if not all(part.isidentifier() for part in where.split(".")):
            raise SpecError(f"malformed spec {spec!r}; use {SPEC_FORMS}")
        module = _import_module(where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
            hint = (
                f"did you mean {', '.join(repr(c) for c in close)}?"
                if close
                else f"it has {', '.join(names[:8])}"
            )
            raise SpecError(f"{where!r} has no attribute {part!r}; {hint}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        if kwargs:
            raise SpecError(f"{spec!r} is a module instance; it takes no --arg (got {_kwargs_text(kwargs)})")
        return obj
    if not callable(obj):
        raise SpecError(
            f"{spec!r} is a {type(obj).__name__}; it must be an nn.Module subclass, a factory or a module"
        )
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise SpecError(f"{spec!r} is class {obj.__name__}, not an nn.Module subclass")
    try:
        if meta:
            model = build_on_meta(obj, **kwargs)
        else:
            model = obj(**kwargs)
    except TypeError as exc:
        raise SpecError(
            f"calling {spec}({_kwargs_text(kwargs)}) failed: {exc}; check the --arg values"
        ) from None
    if not isinstance(model, nn.Module):
        raise SpecError(
            f"{spec!r} returned a {type(model).__name__}, not an nn.Module; point the spec at a model factory"
        )
    return model


# ---------------------------------------------------------------------------------------------
# files


def _zip_names(path: Path) -> list[str]:
    if not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _torch_load(path: Path, map_location: str, unsafe_load: bool) -> Any:
    """``torch.load`` with ``weights_only=True``; a whole pickled module only with ``unsafe_load``."""
    is_zip = zipfile.is_zipfile(path)
    with open(path, "rb") as fh:
        head = fh.read(1)
    # torch.save writes a zip archive, or (legacy format) a pickle, which starts with PROTO 0x80
    if not is_zip and head != b"\x80":
        raise SpecError(
            f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle); check the file"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise SpecError(
                f"{path} is not a PyTorch checkpoint ({_first_line(exc)}); check the file"
            ) from None
        if not unsafe_load:
            raise SpecError(
                f"{path} pickles Python objects (a whole module?), and unpickling them runs code from the file; "
                "pass --unsafe-load (unsafe_load=True) only if you trust it, or save a state_dict instead"
            ) from None
    except (RuntimeError, KeyError, EOFError, ValueError, OSError) as exc:
        raise SpecError(f"{path} is not a PyTorch checkpoint ({_first_line(exc)}); check the file") from None
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise SpecError(f"loading {path} with --unsafe-load failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _load_file(path: Path, device: torch.device, unsafe_load: bool, kwargs: dict[str, Any]) -> nn.Module:
    if path.suffix == ".py":
        raise SpecError(
            f"{path} is a Python file; name the model in it, e.g. {path}:Net or {path}:build_model"
        )
    if kwargs:
        raise SpecError(
            f"{path} is a saved model; --arg only applies to builders (got {_kwargs_text(kwargs)})"
        )
    names = _zip_names(path)
    # Meta has no storage to load into; saved programs are loaded on the CPU instead.
    real = "cpu" if device.type == "meta" else str(device)
    if any(n.endswith("/archive_format") for n in names):
        try:
            program = torch.export.load(path)
        except Exception as exc:
            raise SpecError(f"{path} is not a loadable torch.export archive ({_first_line(exc)})") from None
        return program.module()
    if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
        try:
            with warnings.catch_warnings():
                # torch.jit.load warns that TorchScript is deprecated; loading old archives is our job
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location=real)
        except Exception as exc:
            raise SpecError(f"{path} is not a loadable TorchScript archive ({_first_line(exc)})") from None
    obj = _torch_load(path, str(device), unsafe_load)
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        raise SpecError(
            f"{path} holds a state_dict, which needs an architecture: give the model and the file, "
            f"e.g. `resnet18 --weights {path}` (weights= in Python)"
        )
    raise SpecError(f"{path} holds a {type(obj).__name__}, not a model or state_dict; check the file")


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _NESTED_STATE_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SpecError(
            f"{path} holds no state_dict (a mapping of names to tensors); check the --weights file"
        )
    state = dict(obj)
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def _strip_common_prefix(
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
) -> nn.Module:
    """Load a state_dict file into ``model``; a mismatch lists the missing and unexpected keys.

    A meta model takes the file's tensors as they are (``load_state_dict(assign=True)``), loaded on
    ``map_location``; by default that is meta too, so no values are read but names, shapes and dtypes
    are checked.

    >>> import tempfile, torch
    >>> f = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
    >>> torch.save(nn.Linear(2, 3).state_dict(), f)
    >>> load_weights(nn.Linear(2, 3), f).out_features
    3
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"weights file not found: {path}; check the --weights path")
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    meta = device.type == "meta"
    obj = _torch_load(path, map_location or str(device), unsafe_load)
    state = _extract_state_dict(obj, path)
    expected = model.state_dict()
    state = _strip_common_prefix(state, expected)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise SpecError(
            f"{path} does not fit {type(model).__name__}: missing keys {_few(missing)}, "
            f"unexpected keys {_few(unexpected)}; pick the matching architecture or --arg values"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise SpecError(
            f"{path} does not fit {type(model).__name__}: shape mismatch at {_few(wrong)} (file vs model); "
            "pick the matching architecture or --arg values (e.g. num_classes)"
        )
    if meta:
        # assign=True takes the file's tensors as they are; cast floats to the model's dtypes, as a
        # copying load_state_dict would
        state = {
            k: v.to(expected[k].dtype) if v.is_floating_point() and v.dtype != expected[k].dtype else v
            for k, v in state.items()
        }
    model.load_state_dict(state, strict=True, assign=meta)
    return model


def _few(items: list[str], n: int = 5) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return "[" + ", ".join(items[:n]) + "]" + more


# ---------------------------------------------------------------------------------------------
# the entry point


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or Path(spec).suffix.lower() in {".pt", ".pth", ".pt2", ".ts", ".bin", ".ckpt", ".jit"}
    )


def load_model(
    spec: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    unsafe_load: bool = False,
    pretrained: bool = False,
    kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build or load the model ``spec`` names, optionally load a state_dict, and place it on ``device``.

    ``device="meta"`` allocates nothing and runs no init, for any builder.

    >>> load_model("resnet18", device="meta").fc
    Linear(in_features=512, out_features=1000, bias=True)
    >>> load_model("resnet1800")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    torchscope.errors.SpecError: unknown model 'resnet1800'; did you mean 'resnet18', ...?
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"model spec {spec!r} is empty; use {SPEC_FORMS}")
    spec = spec.strip()
    dev = _check_device(device)
    meta = dev.type == "meta"
    kw = dict(kwargs or {})
    if weights is not None and not Path(weights).is_file():
        raise SpecError(f"weights file not found: {weights}; check the --weights path")
    if spec.startswith("timm:") or ":" in spec or not Path(spec).is_file():
        if weights is not None and not meta:
            # Build without init cost, then take the file's tensors as they are (assign=True).
            model = _build(spec, kw, pretrained, meta=True, device=dev, unsafe_load=unsafe_load)
            if not any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
                model = model.to(dev)  # a module instance: already real
                return load_weights(model, weights, unsafe_load=unsafe_load)
            load_weights(model, weights, unsafe_load=unsafe_load, map_location=str(dev))
            if not any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
                return model
            # non-persistent buffers are not in the file: build for real and copy the weights in
    model = _build(spec, kw, pretrained, meta, dev, unsafe_load)
    if not meta:
        model = model.to(dev)
    elif any(not t.is_meta for t in [*model.parameters(), *model.buffers()]) and not isinstance(
        model, torch.jit.ScriptModule
    ):
        model = model.to("meta")
    if weights is not None:
        load_weights(model, weights, unsafe_load=unsafe_load)
    return model


def _build(
    spec: str, kw: dict[str, Any], pretrained: bool, meta: bool, device: torch.device, unsafe_load: bool
) -> nn.Module:
    if spec.startswith("timm:"):
        return _build_timm(spec, kw, pretrained, meta)
    if ":" in spec:
        if pretrained:
            raise SpecError(f"--pretrained only reads torchvision weights; for {spec!r} pass --weights FILE")
        return _build_attr(spec, kw, meta)
    if Path(spec).is_file():
        if pretrained:
            raise SpecError(f"--pretrained only applies to torchvision names, not the file {spec!r}")
        return _load_file(Path(spec), device, unsafe_load, kw)
    if _looks_like_path(spec):
        raise SpecError(f"file not found: {spec}; check the path (or give a torchvision name)")
    if not spec.replace("_", "").isalnum():
        raise SpecError(f"malformed spec {spec!r}; use {SPEC_FORMS}")
    return _build_torchvision(spec, kw, pretrained, meta)


def unwrap(model: nn.Module) -> tuple[nn.Module, tuple[str, ...]]:
    """Strip ``torch.compile`` and DataParallel/DDP wrappers; return the inner model and the wrappers.

    >>> inner = nn.Linear(2, 2)
    >>> unwrap(nn.DataParallel(inner)) == (inner, ("DataParallel",))
    True
    """
    wrappers: list[str] = []
    while True:
        # by name: importing torch._dynamo to check the type costs a second
        if type(model).__name__ == "OptimizedModule" and isinstance(
            getattr(model, "_orig_mod", None), nn.Module
        ):
            wrappers.append("torch.compile")
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            wrappers.append(type(model).__name__)
            model = model.module
        else:
            return model, tuple(wrappers)
