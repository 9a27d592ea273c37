"""The public :func:`summary`: our options plus torchinfo's keywords, with torchinfo's meaning.

Switching from torchinfo is a change of import. Each torchinfo keyword is mapped here, at the edge,
onto our own options: inputs (``input_size``, ``input_data``, ``batch_dim``, ``dtypes``, ``device``,
``mode``) go to the collector, display keywords (``depth``, ``col_names``, ``col_width``,
``row_settings``, ``verbose``) travel with the result as :class:`DisplayOptions` for the renderer,
and ``cache_forward_pass`` reuses a collected summary instead of running the model again.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchscope._inputs import normalize_sizes, parse_dtype
from torchscope._summary.collect import collect_summary, parameter_summary
from torchscope._summary.data import DisplayOptions, Summary
from torchscope._summary.graph import program_module
from torchscope._summary.show import show
from torchscope.errors import SpecError

COLUMNS = (
    "input_size",
    "output_size",
    "num_params",
    "params_percent",
    "kernel_size",
    "groups",
    "mult_adds",
    "trainable",
)
ROW_SETTINGS = ("depth", "var_names", "ascii_only", "hide_recursive_layers")

# cache_forward_pass: summaries already collected, per model (weakly held) and per call signature
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[Any, Summary]] = weakref.WeakKeyDictionary()


def to_dtype(value: Any, what: str = "dtypes") -> torch.dtype:
    """A torch dtype from a dtype, its name, or a legacy tensor type (``torch.cuda.LongTensor``)."""
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        dt = parse_dtype(value)
        if dt is not None:
            return dt
    legacy = getattr(value, "dtype", None) if isinstance(value, type) else None
    if isinstance(legacy, torch.dtype):  # torch.FloatTensor, torch.cuda.LongTensor...
        return legacy
    raise SpecError(
        f"{what} has {value!r}, which is not a dtype; use e.g. torch.float32, 'int64' or torch.LongTensor"
    )


def _dtypes(dtypes: Any) -> list[torch.dtype] | None:
    if dtypes is None:
        return None
    if isinstance(dtypes, (list, tuple)):
        return [to_dtype(d) for d in dtypes]
    return [to_dtype(dtypes)]


def _with_batch_dim(sizes: Any, batch_dim: int | None) -> Any:
    if batch_dim is None:
        return sizes
    if not isinstance(batch_dim, int) or isinstance(batch_dim, bool):
        raise SpecError(f"batch_dim={batch_dim!r} must be an int, e.g. 0")
    shapes = normalize_sizes(sizes)
    out = []
    for s in shapes:
        if not -len(s) - 1 <= batch_dim <= len(s):
            raise SpecError(f"batch_dim={batch_dim} is out of range for input_size {s}")
        d = batch_dim if batch_dim >= 0 else len(s) + 1 + batch_dim
        out.append((*s[:d], 1, *s[d:]))
    return out


def _is_dim(d: Any) -> bool:
    return isinstance(d, int) and not isinstance(d, bool)


def _mode(model: nn.Module, mode: str | None) -> str:
    if mode is None:
        return "eval"
    if mode == "same":
        return "train" if model.training else "eval"
    if mode in ("train", "eval"):
        return mode
    raise SpecError(f"mode={mode!r} must be 'eval', 'train' or 'same'")


def display_options(
    depth: int | None, col_names: Iterable[str] | None, col_width: int | None,
    row_settings: Iterable[str] | None, verbose: int | None,
) -> DisplayOptions:  # fmt: skip
    """torchinfo's display keywords, checked, as renderer options."""
    if depth is not None and (not _is_dim(depth) or depth < 0):
        raise SpecError(f"depth={depth!r} must be an int >= 0")
    columns = None
    if col_names is not None:
        columns = tuple(str(c) for c in ([col_names] if isinstance(col_names, str) else col_names))
        unknown = [c for c in columns if c not in COLUMNS]
        if unknown:
            raise SpecError(f"col_names has {unknown[0]!r}; use any of {', '.join(COLUMNS)}")
    if col_width is not None and (not _is_dim(col_width) or col_width <= 0):
        raise SpecError(f"col_width={col_width!r} must be a positive int")
    settings = tuple(
        str(r) for r in ([row_settings] if isinstance(row_settings, str) else row_settings or ())
    )
    unknown = [r for r in settings if r not in ROW_SETTINGS]
    if unknown:
        raise SpecError(f"row_settings has {unknown[0]!r}; use any of {', '.join(ROW_SETTINGS)}")
    if verbose is not None and verbose not in (0, 1, 2):
        raise SpecError(f"verbose={verbose!r} must be 0, 1 or 2")
    return DisplayOptions(
        depth=depth,
        columns=columns,
        col_width=col_width,
        row_settings=settings,
        verbose=1 if verbose is None else int(verbose),
    )


def _cache_key(model: nn.Module, *parts: Any) -> Any:
    shapes = tuple(
        (n, tuple(p.shape), p.requires_grad, p.dtype, str(p.device)) for n, p in model.named_parameters()
    )
    return (model.training, shapes, *(repr(p) for p in parts))


def _describe(value: Any) -> Any:
    # a cache key for inputs: their structure, shapes and dtypes (values do not change the summary)
    if isinstance(value, torch.Tensor):
        return ("T", tuple(value.shape), str(value.dtype), str(value.device))
    if isinstance(value, Mapping):
        return tuple((k, _describe(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_describe(v) for v in value))
    return repr(value)


def summary(
    model: nn.Module,
    input_size: Any = None,
    input_data: Any = None,
    batch_dim: int | None = None,
    cache_forward_pass: bool | None = None,
    col_names: Iterable[str] | None = None,
    col_width: int | None = None,
    depth: int | None = None,
    device: torch.device | str | None = None,
    dtypes: Sequence[Any] | Any = None,
    mode: str | None = None,
    row_settings: Iterable[str] | None = None,
    verbose: int | None = None,
    *,
    dtype: Any = None,
    compare_modes: bool = True,
    **kwargs: Any,
) -> Summary:
    """Shapes, parameters and exact multiply-accumulates of every module call, from one forward pass.

    The keywords are torchinfo's, with torchinfo's meaning, so ``from torchscope import summary``
    replaces ``from torchinfo import summary``: ``input_size`` (one shape or a list; ``batch_dim``
    inserts a batch dimension), ``input_data`` (a tensor, or a list/tuple of positional arguments,
    or a dict), ``dtypes`` (one per input; names and legacy types like ``torch.LongTensor`` too),
    ``mode`` (``"eval"``, ``"train"``, ``"same"``), ``device`` (where the inputs go; the model must
    be there already), and the display keywords ``depth``, ``col_names``, ``col_width``,
    ``row_settings`` and ``verbose`` (torchinfo's levels: 0 quiet, 1 the table, 2 the table with
    each module's weights and biases; ``None``: print unless interactive, as torchinfo, so a
    script prints and a notebook shows the returned object, once). ``print(result)`` shows the table. Without any input there is
    no forward pass: the parameter table only. Extra ``kwargs`` go to ``forward``. With
    ``compare_modes`` the other train/eval mode runs too. The model is left exactly as found; a
    failing forward pass raises :class:`~torchscope.errors.ForwardError` naming where it stopped.

    Args:
        model: The model; left exactly as found.
        input_size: One input shape, or a list of them.
        input_data: A tensor, a list/tuple of positional arguments, or a dict of keyword arguments.
        batch_dim: Insert a batch dimension at this index of ``input_size``.
        cache_forward_pass: Reuse the summary collected for the same model and inputs instead of
            running the model again (torchinfo's meaning).
        col_names: The columns to show.
        col_width: Width of each column.
        depth: Deepest level of modules to show; default every depth.
        device: Where the inputs go; the model must be there already.
        dtypes: The inputs' dtypes, one per input.
        mode: ``"eval"`` (default), ``"train"`` or ``"same"``.
        row_settings: Row options, as torchinfo's.
        verbose: 0 quiet, 1 the table, 2 with weights; ``None``: print unless interactive.
        dtype: One dtype for every input.
        compare_modes: Also run the other train/eval mode.
        **kwargs: Keyword arguments for ``forward``.

    Returns:
        The ``Summary``; ``print(result)`` shows the table.

    Raises:
        TorchscopeError: A bad option or input.
        ForwardError: The forward pass failed; names where it stopped.

    >>> s = summary(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), input_size=(2, 8), verbose=0)
    >>> s.total_mult_adds, s.to_dict()["rows"][1]["outputs"][0]["shape"]
    (64, [2, 4])
    """
    display = display_options(depth, col_names, col_width, row_settings, verbose)
    model = program_module(model)
    if not isinstance(model, nn.Module):
        raise SpecError(f"summary() needs an nn.Module, got {type(model).__name__}")
    run_mode = _mode(model, mode)
    if dtypes is not None and dtype is not None:
        raise SpecError("give dtype or dtypes, not both")
    types = _dtypes(dtypes)
    if input_size is not None:
        sizes = _with_batch_dim(normalize_sizes(input_size), batch_dim)
        if types is not None and len(types) == 1 and len(sizes) > 1:
            types = types * len(sizes)
        dtype = types if types is not None else dtype
        input_size = sizes
    elif types is not None:
        raise SpecError(
            "dtypes sets the dtype of inputs built from input_size; input_data has its own dtypes"
        )
    if isinstance(input_data, list):
        input_data = tuple(input_data)  # torchinfo: a list holds the positional arguments
    if input_size is None and input_data is None and not kwargs:
        result = parameter_summary(model, display)
    else:
        key = None
        if cache_forward_pass:
            key = _cache_key(
                model,
                _describe(input_size),
                _describe(input_data),
                _describe(kwargs),
                run_mode,
                dtype,
                device,
                compare_modes,
            )
            cached = _CACHE.get(model, {}).get(key)
            if cached is not None:
                result = dataclasses.replace(cached, display=display)
                show(result, verbose)
                return result
        result = collect_summary(
            model, input_size, input_data, dtype=dtype, mode=run_mode,  # type: ignore[arg-type]
            device=device, compare_modes=compare_modes, kwargs=kwargs, display=display,
        )  # fmt: skip
        if key is not None:
            _CACHE.setdefault(model, {})[key] = result
    show(result, verbose)
    return result


__all__ = ["COLUMNS", "ROW_SETTINGS", "summary", "to_dtype"]
