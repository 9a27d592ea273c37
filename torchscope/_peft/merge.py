"""``merge_and_unload()`` equivalence: the merged model must compute what the adapter model computes.

Merged on a deep copy (the user's model is never touched). Besides the outputs, each LoRA layer's
merged weight is compared with ``W + scaling * B @ A`` computed in float64, so a failure names the
layers where the merge lost precision (a bfloat16/float16 base rounds the sum to its dtype) or went
wrong. Dropout left on (a model in train mode) makes every forward random, so nothing is compared.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from torchscope._adapters.layers import adapter_parts, is_peft_model, strip_wrapper
from torchscope._checkparts.numerics import host_floats, max_abs_diff
from torchscope._inputs import flatten_outputs
from torchscope.errors import TorchscopeError

__all__ = [
    "LayerError",
    "MergeReport",
    "OutputDiff",
    "active_dropout",
    "call_with",
    "low_precision",
    "merge_check",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def active_dropout(model: nn.Module) -> list[str]:
    """The dropout modules that are live now: in train mode with ``p > 0`` (``lora_dropout`` included).

    >>> active_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
    ['1']
    >>> active_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)).eval())
    []
    """
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0
    ]


def call_with(model: nn.Module, inputs: Any) -> Any:
    """A dict is keyword arguments (``model(**batch)``, as for transformers), a tuple positional
    arguments, anything else the one argument."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


@dataclass(frozen=True)
class OutputDiff:
    """One output tensor: its path (``output['logits']``), shape and max |merged - adapter|."""

    name: str
    shape: tuple[int, ...]
    max_abs_diff: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "max_abs_diff": self.max_abs_diff}


@dataclass(frozen=True)
class LayerError:
    """One LoRA layer: max |merged weight - (W + scaling * B @ A)|, the exact sum taken in float64."""

    layer: str
    dtype: str
    max_abs_error: float

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "dtype": self.dtype, "max_abs_error": self.max_abs_error}


@dataclass(frozen=True)
class MergeReport:
    """What :func:`merge_check` compared. ``outputs`` and ``layers`` are empty when nothing could be
    compared (``dropout`` names the live dropout modules then)."""

    ok: bool
    atol: float
    outputs: tuple[OutputDiff, ...]
    layers: tuple[LayerError, ...]
    dtypes: tuple[str, ...]
    dropout: tuple[str, ...]

    @property
    def max_abs_diff(self) -> float | None:
        return max((o.max_abs_diff for o in self.outputs), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "atol": self.atol,
            "max_abs_diff": self.max_abs_diff,
            "outputs": [o.to_dict() for o in self.outputs],
            "layers": [x.to_dict() for x in self.layers],
            "dtypes": list(self.dtypes),
            "dropout": list(self.dropout),
        }


def _expected_weights(model: nn.Module) -> dict[str, tuple[torch.Tensor, str]]:
    """Base layer name -> (W + scaling * B @ A in float64, dtype of W), for the active Linear LoRA layers."""
    out: dict[str, tuple[torch.Tensor, str]] = {}
    modules = dict(model.named_modules())
    parts = adapter_parts(model)
    for pair in parts.pairs:
        layer = modules[pair.layer]
        base = getattr(layer, "base_layer", None)
        scaling = getattr(layer, "scaling", {}).get(pair.adapter)
        active = getattr(layer, "active_adapters", [pair.adapter])
        weight = getattr(base, "weight", None)
        a, b = parts.adapter[pair.a], parts.adapter[pair.b]
        if pair.adapter not in active or not isinstance(weight, torch.Tensor) or scaling is None:
            continue
        if a.dim() != 2 or b.dim() != 2 or getattr(layer, "use_dora", {}).get(pair.adapter, False):
            continue  # conv and DoRA layers merge by other formulas: outputs still compared
        delta = (b.detach().double() @ a.detach().double()) * float(scaling)
        if getattr(layer, "fan_in_fan_out", False):
            delta = delta.T
        if delta.shape != weight.shape:
            continue
        out[strip_wrapper(pair.layer)] = (
            weight.detach().double() + delta,
            str(weight.dtype).removeprefix("torch."),
        )
    return out


def merge_check(peft_model: nn.Module, inputs: Any, *, atol: float = 1e-5) -> MergeReport:
    """Merge a deep copy of ``peft_model`` and compare its outputs on ``inputs`` with the adapter model's
    (``inputs``: see :func:`call_with`); ``ok`` when every float output is within ``atol``."""
    if not is_peft_model(peft_model):
        raise TorchscopeError(
            f"{type(peft_model).__name__} is not a PEFT model (no peft_config); pass the model get_peft_model returned"
        )
    if not callable(getattr(peft_model, "merge_and_unload", None)):
        raise TorchscopeError(
            f"{type(peft_model).__name__} has no merge_and_unload(); only LoRA-type adapters merge"
        )
    if isinstance(atol, bool) or not isinstance(atol, int | float) or not atol >= 0:
        raise TorchscopeError(f"atol={atol!r} must be a number >= 0")
    dtypes = tuple(
        sorted(
            {str(p.dtype).removeprefix("torch.") for p in peft_model.parameters() if p.is_floating_point()}
        )
    )
    dropout = active_dropout(peft_model)
    if dropout:
        return MergeReport(False, float(atol), (), (), dtypes, tuple(dropout))
    work = copy.deepcopy(peft_model)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        before = [(n, t.detach().clone()) for n, t in flatten_outputs(call_with(work, inputs))]
        expected = _expected_weights(work)
        merged: nn.Module = getattr(work, "merge_and_unload")()  # noqa: B009 - typed as a Module attribute
        after = dict(flatten_outputs(call_with(merged, inputs)))
        modules = dict(merged.named_modules())
        layer_names = [
            n for n in expected if isinstance(getattr(modules.get(n), "weight", None), torch.Tensor)
        ]
        diffs = [
            max_abs_diff(after[n].double(), t.double())
            if n in after and after[n].shape == t.shape
            else torch.tensor(float("inf"), dtype=torch.float64)
            for n, t in before
            if t.is_floating_point() or t.is_complex()
        ]
        errors = [max_abs_diff(modules[n].weight.detach().double(), expected[n][0]) for n in layer_names]
        values = host_floats([*diffs, *errors])  # one transfer
    floats_out = [(n, t) for n, t in before if t.is_floating_point() or t.is_complex()]
    outputs = tuple(
        OutputDiff(n, tuple(t.shape), v) for (n, t), v in zip(floats_out, values[: len(diffs)], strict=True)
    )
    layers = tuple(
        LayerError(n, expected[n][1], v) for n, v in zip(layer_names, values[len(diffs) :], strict=True)
    )
    if not outputs:
        raise TorchscopeError("the model's forward returned no float tensor, so there is nothing to compare")
    ok = all(o.max_abs_diff <= atol for o in outputs)
    return MergeReport(ok, float(atol), outputs, layers, dtypes, ())


def low_precision(report: MergeReport) -> list[str]:
    """The half-precision dtypes among the model's params (their merge rounds W + B @ A)."""
    names = {str(x).removeprefix("torch.") for x in _LOW_PRECISION}
    return [d for d in report.dtypes if d in names]
