"""hypothesis strategies for model tests: tensors, inputs a model accepts, freeze patterns, small models.

>>> from hypothesis import given, settings
>>> from torchscope.strategies import inputs_for, small_models
>>> @settings(max_examples=5, deadline=None)
... @given(small_models().flatmap(lambda m: inputs_for(m).map(lambda x: (m, x))))
... def test_forward_runs(pair):
...     model, x = pair
...     model(x)
>>> test_forward_runs()
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

try:
    from hypothesis import strategies as st
except ImportError as exc:  # an optional extra: only this module needs it
    raise ModuleNotFoundError(
        "torchscope.strategies needs hypothesis: pip install 'torchscope[hypothesis]'", name="hypothesis"
    ) from exc

from torchscope.errors import SpecError

__all__ = ["ModelSpec", "SmallNet", "build_small_model", "freeze_patterns", "inputs_for", "small_models", "tensors"]

_FLOAT_KINDS = ("normal", "uniform", "zeros", "ones", "large", "tiny")


def _shape_strategy(shape: Any) -> st.SearchStrategy[tuple[int, ...]]:
    if isinstance(shape, st.SearchStrategy):
        return shape
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise SpecError(f"shape={shape!r} must be a tuple of ints >= 0 or a hypothesis strategy of tuples")
    return st.just(tuple(shape))


@st.composite
def _seeded_tensor(draw: Any, shape: tuple[int, ...], dtype: torch.dtype, low: int, high: int) -> torch.Tensor:
    # A seed and a distribution, not one draw per element: fast for image-sized tensors, and the
    # distribution (zeros, huge, tiny values) is what tends to matter.
    seed = draw(st.integers(0, 2**32 - 1))
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if not dtype.is_floating_point and not dtype.is_complex:
        return torch.randint(low, high, shape, generator=gen, dtype=dtype)
    kind = draw(st.sampled_from(_FLOAT_KINDS))
    if kind == "zeros":
        return torch.zeros(shape, dtype=dtype)
    if kind == "ones":
        return torch.ones(shape, dtype=dtype)
    base = torch.randn(shape, generator=gen) if kind != "uniform" else torch.rand(shape, generator=gen) * 2 - 1
    scale = {"normal": 1.0, "uniform": 1.0, "large": 1e3, "tiny": 1e-3}[kind]
    return (base * scale).to(dtype)


def tensors(
    shape: Any,
    dtype: torch.dtype = torch.float32,
    elements: st.SearchStrategy[Any] | None = None,
    *,
    low: int = 0,
    high: int = 10,
) -> st.SearchStrategy[torch.Tensor]:
    """Tensors of ``shape`` (a tuple, or a strategy of tuples) and ``dtype``.

    With ``elements`` every value is drawn from it (shrinks element by element; keep shapes small).
    Without, a seed and a distribution are drawn (normal, uniform, zeros, ones, large, tiny for
    floats; ``[low, high)`` for integers), which is fast for image-sized tensors.

    >>> from hypothesis import given, strategies as st
    >>> @given(tensors((2, 3), elements=st.floats(-1, 1, width=32)))
    ... def test_bounded(t):
    ...     assert t.shape == (2, 3) and t.abs().max() <= 1
    >>> test_bounded()
    """
    if not isinstance(dtype, torch.dtype):
        raise SpecError(f"dtype={dtype!r} must be a torch.dtype such as torch.float32")
    if not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool and low >= high:
        raise SpecError(f"low={low} must be < high={high}")
    shapes = _shape_strategy(shape)
    if elements is None:
        return shapes.flatmap(lambda s: _seeded_tensor(s, dtype, low, high))

    def from_elements(s: tuple[int, ...]) -> st.SearchStrategy[torch.Tensor]:
        n = math.prod(s)
        return st.lists(elements, min_size=n, max_size=n).map(lambda v: torch.tensor(v, dtype=dtype).reshape(s))

    return shapes.flatmap(from_elements)


# ---------------------------------------------------------------------------------------------
# Inputs a model accepts


_ACCESSOR = re.compile(r"\[(?:'((?:[^'\\]|\\.)*)'|(\d+))\]")


def _torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise SpecError(f"unknown dtype {name!r} in the summary's inputs")
    return dtype


def _path(name: str) -> list[str | int]:
    """``input[0]['image']`` -> ``[0, 'image']``."""
    return [key if idx == "" else int(idx) for key, idx in _ACCESSOR.findall(name)]


def _assemble(paths: list[list[str | int]], values: Sequence[Any]) -> Any:
    """Rebuild nested lists/dicts from accessor paths (the inverse of flatten_outputs)."""
    root: dict[Any, Any] = {}
    for path, value in zip(paths, values, strict=True):
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    def convert(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if node and all(isinstance(k, int) for k in node):
            return [convert(node[k]) for k in sorted(node)]
        return {k: convert(v) for k, v in node.items()}

    return convert(root)


def _from_summary(summary: Any, batch_sizes: st.SearchStrategy[int] | None) -> st.SearchStrategy[Any]:
    specs = list(summary.inputs)
    if not specs:
        raise SpecError("the summary records no input tensors; build it with an example input")
    paths = [_path(s.name) for s in specs]
    if not all(p and isinstance(p[0], int) for p in paths):
        paths = [[i] for i in range(len(specs))]
    batch = batch_sizes if batch_sizes is not None else st.just(specs[0].shape[0] if specs[0].shape else 1)

    def build(b: int) -> st.SearchStrategy[Any]:
        parts = [tensors((b, *s.shape[1:]) if s.shape else (), _torch_dtype(s.dtype), high=2) for s in specs]

        def assemble(ts: tuple[torch.Tensor, ...]) -> Any:
            args = _assemble(paths, ts)
            # One positional argument is passed as model(x); several as model(*x).
            return args[0] if len(args) == 1 else tuple(args)

        return st.tuples(*parts).map(assemble)

    return batch.flatmap(build)


def _first_layer(model: nn.Module) -> nn.Module | None:
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.LazyLinear, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return m
    return None


def inputs_for(
    model_or_summary: Any,
    *,
    batch_sizes: st.SearchStrategy[int] | None = None,
    spatial: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[Any]:
    """Batches of the shape a model expects.

    From a :class:`torchscope.Summary` (its recorded input shapes and dtypes; the batch size
    varies when ``batch_sizes`` is given), a :class:`SmallNet` (its ``input_shape``), or a model's
    first layer: Linear -> ``(B, in_features)``, Conv{1,2,3}d -> ``(B, C, S, ...)`` with
    ``S`` from ``spatial`` (8 to 16), Embedding -> token ids ``(B, 8)``.

    >>> from hypothesis import given
    >>> import torch
    >>> @given(inputs_for(torch.nn.Conv2d(3, 4, 3)))
    ... def test_conv(x):
    ...     assert x.shape[1] == 3 and x.shape[0] >= 2
    >>> test_conv()
    """
    batch = batch_sizes if batch_sizes is not None else st.integers(2, 4)
    if hasattr(model_or_summary, "inputs") and hasattr(model_or_summary, "rows"):
        return _from_summary(model_or_summary, batch_sizes)
    if not isinstance(model_or_summary, nn.Module):
        raise SpecError(
            f"inputs_for needs an nn.Module or a torchscope.Summary, not {type(model_or_summary).__name__}"
        )
    model = model_or_summary
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple):
        return batch.flatmap(lambda b: tensors((b, *shape)))
    layer = _first_layer(model)
    if isinstance(layer, nn.Embedding):
        vocab = layer.num_embeddings
        return batch.flatmap(lambda b: tensors((b, 8), torch.long, high=vocab))
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and not isinstance(
        layer, nn.modules.lazy.LazyModuleMixin
    ):
        dims = 1 if isinstance(layer, nn.Conv1d) else 3 if isinstance(layer, nn.Conv3d) else 2
        sizes = spatial if spatial is not None else st.integers(8, 16)
        channels = layer.in_channels
        return st.tuples(batch, sizes).flatmap(lambda bs: tensors((bs[0], channels, *([bs[1]] * dims))))
    if isinstance(layer, nn.Linear) and not isinstance(layer, nn.modules.lazy.LazyModuleMixin):
        features = layer.in_features
        return batch.flatmap(lambda b: tensors((b, features)))
    if isinstance(layer, nn.LazyLinear):
        return st.tuples(batch, st.integers(1, 8)).flatmap(lambda bf: tensors(bf))
    raise SpecError(
        f"cannot tell what input {type(model).__name__} takes from its first layer; "
        "pass torchscope.summary(model, example_input) instead, or use tensors(shape=...)"
    )


# ---------------------------------------------------------------------------------------------
# Freeze patterns


def freeze_patterns(model: nn.Module, *, max_size: int = 4) -> st.SearchStrategy[list[str]]:
    """Random subsets of ``model``'s modules to freeze, as patterns (a module name or ``name.*``).

    Each pattern selects at least one parameter, so ``torchscope.freeze(model, *patterns)`` works.
    The list may be empty (freeze nothing).

    >>> import torch
    >>> from hypothesis import given
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    >>> @given(freeze_patterns(m))
    ... def test_patterns(ps):
    ...     assert set(ps) <= {"0", "0.*", "2", "2.*"}
    >>> test_patterns()
    """
    candidates: list[str] = []
    for name, module in model.named_modules():
        if name and any(True for _ in module.parameters()):
            candidates.append(name)
            if any(True for _ in module.children()) or list(module.parameters(recurse=False)):
                candidates.append(name + ".*")
    if not candidates:
        raise SpecError(f"{type(model).__name__} has no submodule with parameters to freeze")
    return st.lists(st.sampled_from(candidates), unique=True, max_size=min(max_size, len(candidates)))


# ---------------------------------------------------------------------------------------------
# Small models


@dataclass(frozen=True)
class ModelSpec:
    """The point of the model space a :class:`SmallNet` was built from (plain data)."""

    kind: str  # "mlp" or "conv"
    in_features: int  # features (mlp) or channels (conv)
    image_size: int  # conv only
    widths: tuple[int, ...]  # hidden widths (mlp) or conv channels
    kernel: int
    norm: str | None  # None, "batchnorm", "layernorm" (mlp) / "groupnorm" (conv)
    activation: str  # "relu" or "tanh"
    square: int  # width of the square layer after the blocks; 0 for none
    tied: bool  # a "mirror" layer sharing the square layer's weight
    shared: bool  # the square layer called twice (a shared child under two names)
    unused_branch: bool  # a layer that forward never calls
    num_classes: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SmallNet(nn.Module):
    """A small MLP or CNN built from a :class:`ModelSpec`; ``input_shape`` excludes the batch."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        act: type[nn.Module] = nn.ReLU if spec.activation == "relu" else nn.Tanh
        blocks: list[nn.Module] = []
        width = spec.in_features
        for w in spec.widths:
            layers: dict[str, nn.Module] = {}
            if spec.kind == "conv":
                layers["conv"] = nn.Conv2d(width, w, spec.kernel, padding=spec.kernel // 2)
                if spec.norm == "batchnorm":
                    layers["norm"] = nn.BatchNorm2d(w)
                elif spec.norm == "groupnorm":
                    layers["norm"] = nn.GroupNorm(1, w)
            else:
                layers["linear"] = nn.Linear(width, w)
                if spec.norm == "batchnorm":
                    layers["norm"] = nn.BatchNorm1d(w)
                elif spec.norm == "layernorm":
                    layers["norm"] = nn.LayerNorm(w)
            layers["act"] = act()
            blocks.append(nn.Sequential(*layers.values()))
            for i, key in enumerate(layers):  # readable names: blocks.0.conv, blocks.0.norm
                blocks[-1]._modules[key] = blocks[-1]._modules.pop(str(i))
            width = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if spec.kind == "conv" else nn.Identity()
        if spec.square:
            self.proj = nn.Linear(width, spec.square)
            self.square = nn.Linear(spec.square, spec.square)
            width = spec.square
            if spec.tied:
                self.mirror = nn.Linear(width, width)
                self.mirror.weight = self.square.weight
            if spec.shared:
                self.square_again = self.square
        if spec.unused_branch:
            self.unused = nn.Linear(width, spec.num_classes)
        self.head = nn.Linear(width, spec.num_classes)
        if spec.kind == "conv":
            self.input_shape: tuple[int, ...] = (spec.in_features, spec.image_size, spec.image_size)
        else:
            self.input_shape = (spec.in_features,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.blocks(x))
        if self.spec.square:
            h = torch.tanh(self.square(self.proj(h)))
            if self.spec.tied:
                h = torch.tanh(self.mirror(h))
            if self.spec.shared:
                h = torch.tanh(self.square_again(h))
        return self.head(h)


@st.composite
def _model_specs(draw: Any, kinds: Sequence[str], max_width: int) -> ModelSpec:
    kind = draw(st.sampled_from(list(kinds)))
    conv = kind == "conv"
    widths = tuple(draw(st.lists(st.integers(2, max_width), min_size=1, max_size=2 if conv else 3)))
    norms: list[str | None] = [None, "batchnorm", "groupnorm"] if conv else [None, "batchnorm", "layernorm"]
    square = draw(st.sampled_from([0, 0, 2, 3, 4]))
    return ModelSpec(
        kind=kind,
        in_features=draw(st.integers(1, 3) if conv else st.integers(2, 6)),
        image_size=draw(st.integers(3, 6)) if conv else 0,
        widths=widths,
        kernel=draw(st.sampled_from([1, 3])) if conv else 1,
        norm=draw(st.sampled_from(norms)),
        activation=draw(st.sampled_from(["relu", "tanh"])),
        square=square,
        tied=bool(square) and draw(st.booleans()),
        shared=bool(square) and draw(st.booleans()),
        unused_branch=draw(st.booleans()),
        num_classes=draw(st.integers(2, 4)),
        seed=draw(st.integers(0, 2**16)),
    )


def build_small_model(spec: ModelSpec) -> SmallNet:
    """Build the :class:`SmallNet` for ``spec``, initialised from ``spec.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return SmallNet(spec)


def small_models(kinds: Sequence[str] = ("mlp", "conv"), *, max_width: int = 6) -> st.SearchStrategy[SmallNet]:
    """Random small MLPs and CNNs: norm layers, tied weights, a shared child, unused branches.

    Each model has ``spec`` (a :class:`ModelSpec`) and ``input_shape``; :func:`inputs_for` knows it.

    >>> from hypothesis import given
    >>> @given(small_models())
    ... def test_has_head(model):
    ...     assert model.head.out_features == model.spec.num_classes
    >>> test_has_head()
    """
    bad = [k for k in kinds if k not in ("mlp", "conv")]
    if bad or not kinds:
        raise SpecError(f"kinds={list(kinds)!r}: each kind must be 'mlp' or 'conv'")
    if max_width < 2:
        raise SpecError(f"max_width={max_width} must be >= 2")
    return _model_specs(tuple(kinds), max_width).map(build_small_model)
