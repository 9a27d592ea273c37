"""Synthetic inputs in, named output tensors out: what every forward-running collector shares.

``parse_input_size`` (from the torch-free :mod:`torchscope._parsing`) reads ``--input-size``;
:func:`make_inputs` builds random tensors of those shapes; :func:`prepare_call` turns
``input_size``/``input_data``/kwargs into the positional and keyword arguments of one forward call;
:func:`flatten_outputs` names every tensor in whatever the model returned (tuple, namedtuple, dict,
dataclass, ``InceptionOutputs``, a detection model's list of dicts), so reports show every output
shape and not only the first.
"""

from __future__ import annotations

import dataclasses
import inspect
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

# re-exported for the collectors: the one input-size grammar lives, torch-free, in _parsing
from torchscope._parsing import Shape as Shape
from torchscope._parsing import dtype_name
from torchscope._parsing import parse_input_size as parse_input_size
from torchscope._tokens import is_token_model, token_batch
from torchscope.errors import ForwardError, SpecError


class InputDtypeError(ForwardError):
    """An input whose dtype the layer that receives it cannot take (checked before the layer runs)."""


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """A dtype from its name (``float16``, ``bf16``, ``int64``...), or None.

    >>> parse_dtype("bf16")
    torch.bfloat16
    """
    if name is None or isinstance(name, torch.dtype):
        return name
    return cast(torch.dtype, getattr(torch, dtype_name(name, option=None)))


def dtype_hint(error: str, input_dtypes: Sequence[str]) -> str:
    """The fix for a forward pass that failed on the dtype of its synthetic inputs, or ``""``.

    Float inputs into an embedding (``'indices'`` must be Long or Int) need token ids: ``--dtype long``.

    >>> dtype_hint("Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int", ["float32"])
    '; the input is float32 but an embedding takes integer indices: give token ids (--dtype long)'
    """
    floats = sorted({d for d in input_dtypes if d.startswith(("float", "bfloat", "complex"))})
    if not floats and "got torch.float" in error.lower():  # the error says what it got
        floats = ["float"]
    if floats and "'indices'" in error and "Long" in error:
        return f"; the input is {', '.join(floats)} but an embedding takes integer indices: give token ids (--dtype long)"
    return ""


def random_input(
    size: Sequence[int], dtype: torch.dtype, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One random tensor: standard normal floats, 0/1 integers (valid indices of any embedding), False bools."""
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(tuple(size), generator=generator).to(device=device, dtype=dtype)
    if dtype == torch.bool:
        return torch.zeros(tuple(size), dtype=dtype, device=device)
    return torch.randint(0, 2, tuple(size), generator=generator).to(device=device, dtype=dtype)


def normalize_sizes(input_size: Any) -> list[Shape]:
    """One shape or several as a list of tuples; ``()`` is one 0-d input. A bad value is a SpecError.

    >>> normalize_sizes((1, 3)), normalize_sizes([(2,), (1, 4)]), normalize_sizes(())
    ([(1, 3)], [(2,), (1, 4)], [()])
    """
    bad = SpecError(f"input_size={input_size!r} must be a shape like (1, 3, 224, 224) or a list of shapes")
    if isinstance(input_size, torch.Size):
        out = [tuple(input_size)]
    elif not isinstance(input_size, (list, tuple)):
        raise bad
    elif all(_is_dim(d) for d in input_size):
        out = [tuple(int(d) for d in input_size)]
    elif all(isinstance(s, (list, tuple, torch.Size)) and all(_is_dim(d) for d in s) for s in input_size):
        out = [tuple(int(d) for d in s) for s in input_size]
    else:
        raise bad
    if any(d <= 0 for s in out for d in s):
        raise SpecError(f"input_size={input_size!r} needs positive dimensions, e.g. (1, 3, 224, 224)")
    return out


def _is_dim(d: Any) -> bool:
    return isinstance(d, int) and not isinstance(d, bool)


def to_device(data: Any, device: torch.device) -> Any:
    """Every tensor in ``data`` (nested lists, tuples, namedtuples, dicts) moved to ``device``."""
    if isinstance(data, torch.Tensor):
        return data.to(device)
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(to_device(v, device) for v in data))
    if isinstance(data, Mapping):
        return type(data)({k: to_device(v, device) for k, v in data.items()})  # type: ignore[call-arg]
    if isinstance(data, (list, tuple)):
        return type(data)(to_device(v, device) for v in data)
    return data


def make_inputs(
    input_size: Any,
    dtype: torch.dtype | str | Sequence[torch.dtype | str] | None = None,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """Random tensors of the given shape(s): normal floats, and 0/1 for integer or bool dtypes.

    ``dtype`` is one dtype for all inputs or one per input. Integer inputs are 0 or 1 so that they
    are valid indices of any embedding.

    >>> [tuple(t.shape) for t in make_inputs([(2, 3), (2, 5)])]
    [(2, 3), (2, 5)]
    >>> make_inputs((1, 4), dtype="int64")[0].dtype
    torch.int64
    """
    sizes = normalize_sizes(input_size)
    if dtype is None or isinstance(dtype, (str, torch.dtype)):
        dtypes = [parse_dtype(dtype) or torch.float32] * len(sizes)
    else:
        dtypes = [parse_dtype(d) or torch.float32 for d in dtype]
        if len(dtypes) != len(sizes):
            raise SpecError(f"{len(dtypes)} dtypes given for {len(sizes)} input shapes; give one per shape")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    out = []
    for size, dt in zip(sizes, dtypes, strict=True):
        if dt.is_floating_point or dt.is_complex:
            out.append(torch.randn(size, dtype=dt, device=dev))
        elif dt == torch.bool:
            out.append(torch.zeros(size, dtype=dt, device=dev))
        else:
            out.append(torch.randint(0, 2, size, dtype=dt, device=dev))
    return out


def model_device(model: nn.Module) -> torch.device:
    """Where the model's first parameter or buffer lives (CPU for a module without tensors)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_float_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter (float32 if none), for synthetic inputs."""
    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _takes_keywords(model: nn.Module, keys: Sequence[str]) -> bool:
    """Whether ``model(**d)`` is meant rather than ``model(d)``: every key names a forward parameter."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) != 1 and all(isinstance(k, str) and k in params for k in keys)


def prepare_call(
    model: nn.Module,
    input_size: Any = None,
    input_data: Any = None,
    *,
    dtype: torch.dtype | str | Sequence[torch.dtype | str] | None = None,
    device: torch.device | str | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The ``(args, kwargs)`` of one forward call.

    ``input_size``: random tensors of that shape (several shapes: several positional arguments).
    ``input_data``: a tensor is one argument, a tuple is several, a list is one argument (detection
    models take a list of images), a dict is one argument unless its keys are the names of forward's
    parameters (then ``model(**d)``). ``kwargs`` are passed as keyword arguments. A language model
    (``config.vocab_size``, ``forward(input_ids, ...)``) given one ``(batch, length)`` size and no
    float dtype gets token ids below its vocab size and an all-ones mask (:func:`token_batch`).

    >>> args, kw = prepare_call(nn.Linear(3, 2), input_size=(4, 3))
    >>> tuple(args[0].shape), kw
    ((4, 3), {})
    """
    if input_size is not None and input_data is not None:
        raise SpecError("give input_size or input_data, not both")
    dev = torch.device(device) if device is not None else model_device(model)
    kw = dict(kwargs or {})
    if device is not None:
        kw = to_device(kw, dev)
    if input_size is not None:
        tokens = _token_dtype(model, dtype)
        if tokens is not None and len(sizes := normalize_sizes(input_size)) == 1:
            return (), {**token_batch(model, sizes[0], device=dev, dtype=tokens), **kw}
        dt = dtype if dtype is not None else model_float_dtype(model)
        return tuple(make_inputs(input_size, dt, dev)), kw
    if input_data is None:
        if kw:
            return (), kw
        raise SpecError("no input: pass input_size=(1, 3, 224, 224) or input_data=tensor (CLI: --input-size)")
    data = to_device(input_data, dev) if device is not None else input_data
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return tuple(data), kw
    if isinstance(data, Mapping) and _takes_keywords(model, list(data)):
        return (), {**dict(data), **kw}
    return (data,), kw


def _token_dtype(model: nn.Module, dtype: Any) -> torch.dtype | None:
    """The dtype of token ids for a language model (int64 unless an integer dtype is given), else None."""
    if (isinstance(dtype, Sequence) and not isinstance(dtype, str)) or not is_token_model(model):
        return None
    dt = parse_dtype(dtype) or torch.int64
    return None if dt.is_floating_point or dt.is_complex or dt == torch.bool else dt


def _is_dataclass_instance(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def flatten_outputs(obj: Any, prefix: str = "output") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in ``obj`` with a readable path, in order.

    Handles tensors, tuples, namedtuples (``InceptionOutputs``, ``GoogLeNetOutputs``), lists, dicts
    (a detection model's list of dicts too), dataclasses and objects with ``to_tuple``.

    >>> from collections import namedtuple
    >>> P = namedtuple("P", "logits aux")
    >>> [n for n, _ in flatten_outputs(P(torch.zeros(1), [torch.zeros(2), {"b": torch.zeros(3)}]))]
    ['output.logits', 'output.aux[0]', "output.aux[1]['b']"]
    """
    out: list[tuple[str, torch.Tensor]] = []
    _flatten(obj, prefix, out, 0)
    return out


def _flatten(obj: Any, path: str, out: list[tuple[str, torch.Tensor]], depth: int) -> None:
    if depth > 32:  # a self-referencing structure; stop rather than recurse forever
        return
    if isinstance(obj, torch.Tensor):
        out.append((path, obj))
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        for field, value in zip(obj._fields, obj, strict=True):
            _flatten(value, f"{path}.{field}", out, depth + 1)
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{path}[{key!r}]", out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _flatten(value, f"{path}[{i}]", out, depth + 1)
    elif _is_dataclass_instance(obj):
        for f in dataclasses.fields(obj):
            _flatten(getattr(obj, f.name), f"{path}.{f.name}", out, depth + 1)
    elif hasattr(obj, "to_tuple") and callable(obj.to_tuple):
        for i, value in enumerate(obj.to_tuple()):
            _flatten(value, f"{path}[{i}]", out, depth + 1)


def describe_structure(obj: Any) -> str:
    """A short type description of an output: ``Tensor``, ``InceptionOutputs(logits, aux_logits)``."""
    if isinstance(obj, torch.Tensor):
        return "Tensor"
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return f"{type(obj).__name__}({', '.join(obj._fields)})"
    if isinstance(obj, Mapping):
        return f"{type(obj).__name__}({', '.join(str(k) for k in obj)})"
    if isinstance(obj, (list, tuple)):
        return f"{type(obj).__name__}[{len(obj)}]"
    if _is_dataclass_instance(obj):
        return f"{type(obj).__name__}({', '.join(f.name for f in dataclasses.fields(obj))})"
    return type(obj).__name__


def _autocast(t: torch.Tensor) -> bool:
    for device in dict.fromkeys((t.device.type, "cpu", "cuda")):
        try:
            if torch.is_autocast_enabled(device):
                return True
        except (RuntimeError, TypeError):  # a device type autocast does not know (meta), or old torch
            continue
    return False


def _exact(t: torch.Tensor) -> bool:
    return t.is_floating_point() or t.is_complex()


def layer_dtype_problem(module: nn.Module, x: torch.Tensor) -> str | None:
    """Why torch's own layer ``module`` cannot take ``x`` as its input, or None.

    The checks real kernels make and meta kernels skip: a floating input into a Linear or Conv must
    have the weight's dtype (unless autocast is on), an integer input into a layer with floating
    weights fails (an Embedding excepted), and an Embedding takes integer indices. Layers not
    torch's own (peft, bitsandbytes, the user's) are not judged: they may cast their inputs.

    >>> layer_dtype_problem(nn.Linear(2, 2), torch.zeros(1, 2, dtype=torch.float16))
    'has float32 weights: give float32 inputs (--dtype float32) or run under autocast'
    >>> layer_dtype_problem(nn.Embedding(4, 2), torch.zeros(1, 2, dtype=torch.long)) is None
    True
    """
    cls = type(module)
    if not cls.__module__.startswith("torch.nn.modules."):
        return None
    if isinstance(module, nn.Embedding | nn.EmbeddingBag):
        return "takes integer indices: give token ids (--dtype long)" if _exact(x) else None
    weight = next((p for p in module._parameters.values() if p is not None and p.is_floating_point()), None)
    if weight is None:
        return None
    w = str(weight.dtype).removeprefix("torch.")
    if not _exact(x):
        return f"has {w} weights: give float inputs (--dtype {w})"
    if (
        isinstance(module, nn.Linear | nn.modules.conv._ConvNd)
        and x.dtype != weight.dtype
        and not x.is_complex()
        and not _autocast(x)
    ):
        return f"has {w} weights: give {w} inputs (--dtype {w}) or run under autocast"
    return None


class InputDtypeCheck:
    """The model's input tensors, checked against every layer of torch's that takes one of them.

    Call it from a forward pre-hook with each module call's first positional argument: when that
    is one of the model's own inputs (by identity: a tensor the model made from it is its own
    business) and the layer cannot take its dtype (:func:`layer_dtype_problem`), it raises an
    :class:`InputDtypeError`. It runs before the layer does, so the message is the same on the meta
    device, whose kernels skip some dtype checks, and on a real one. Every collector that runs a
    forward pass uses it: summary, grads and activations through their call tracker; the memory
    predictor from its own pre-hook.

    >>> x = torch.zeros(1, 2, dtype=torch.float16)
    >>> check = InputDtypeCheck((x,), {})
    >>> check(nn.Linear(2, 2), x, "fc")
    Traceback (most recent call last):
    torchscope._inputs.InputDtypeError: input[0] is float16 but fc (Linear) has float32 weights: give float32 inputs (--dtype float32) or run under autocast
    """

    def __init__(self, args: Any, kwargs: Mapping[str, Any]) -> None:
        named = flatten_outputs(args, "input")
        for key, value in kwargs.items():
            named += flatten_outputs(value, str(key))  # input_ids, attention_mask...
        # weak references: holding the inputs would keep them alive past the step's own last use
        # (the memory predictor counts every live tensor)
        self.inputs: dict[int, tuple[str, weakref.ref[torch.Tensor]]] = {}
        for name, t in named:
            self.inputs.setdefault(id(t), (name, weakref.ref(t)))

    def __call__(self, module: nn.Module, x: Any, name: str = "") -> None:
        found = self.inputs.get(id(x))
        if found is None or not isinstance(x, torch.Tensor) or found[1]() is not x:
            return
        problem = layer_dtype_problem(module, x)
        if problem is not None:
            who = f"{name} ({type(module).__name__})" if name else f"the model ({type(module).__name__})"
            raise InputDtypeError(f"{found[0]} is {str(x.dtype).removeprefix('torch.')} but {who} {problem}")
