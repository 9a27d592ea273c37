"""grad_report(): one forward and backward on a synthetic batch; per-layer gradient norms.

Lists the trainable parameters that received no gradient ("unused", what DDP's
``find_unused_parameters`` would complain about) and flags layers whose gradient norm vanishes or
explodes relative to the median layer. The model is left as found: grads, BatchNorm statistics,
modes, hooks and RNG are restored by :func:`preserved`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from torchscope._check.outputs import output_tensors
from torchscope._check.reference import reference_loss
from torchscope._checkparts.report import unused_caveat
from torchscope._compiled import uncompiled
from torchscope._format import format_shape
from torchscope._inputs import flatten_outputs, prepare_call
from torchscope._recursion import with_headroom
from torchscope._result import Record, Result
from torchscope._state import preserved
from torchscope._summary import CallTracker
from torchscope._tokens import is_causal_lm, is_token_model, takes_labels, token_labels
from torchscope.errors import ForwardError, SpecError

# A layer whose grad/param norm ratio is this many times below (above) the median layer's vanishes
# (explodes).
GRAD_RATIO = 1e3

LossSpec = Literal["auto", "ce", "sum"] | Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class LayerGrad(Record):
    """Gradient of one module's own parameters (children excluded)."""

    name: str
    type: str
    params: int
    trainable: int
    grad_norm: float | None  # None when none of its trainable parameters got a grad
    param_norm: float
    ratio: float | None  # grad_norm / param_norm
    flag: str | None  # "vanishing", "exploding", "nonfinite", "unused" or None


@dataclass(frozen=True, repr=False)
class GradReport(Result):
    """What :func:`grad_report` found; plain data."""

    model: str
    loss: str
    loss_value: float
    mode: str
    layers: tuple[LayerGrad, ...]
    unused: tuple[str, ...]  # trainable parameters that received no gradient
    frozen: int  # number of parameters (elements) with requires_grad=False
    trainable: int
    flags: tuple[str, ...]
    caveats: tuple[str, ...] = ()  # what limits the verdict (unused params: this input only)
    nothing_checked: str = ""  # why no trainable parameter had a gradient to check, when none had

    SCHEMA = "torchscope.grads/1"
    DERIVED = ("status", "checked")

    @property
    def checked(self) -> int:
        """Layers whose gradient was looked at (a layer whose parameters got none is not)."""
        return sum(la.grad_norm is not None for la in self.layers)

    @property
    def status(self) -> str:
        """``"not checked"`` (no parameter got a gradient), ``"flagged"`` or ``"ok"``."""
        if self.checked == 0:
            return "not checked"
        return "flagged" if self.flags or self.unused else "ok"

    def table_rows(self) -> list[dict[str, Any]]:
        """One dict per layer: what :meth:`to_dataframe` holds."""
        return [layer.to_dict() for layer in self.layers]


def compute_loss(output: Any, loss: LossSpec) -> tuple[torch.Tensor, str]:
    """The scalar loss of ``output`` to backpropagate, and its name (``grads --loss``'s meaning).

    ``"auto"``: cross-entropy against random labels for ``(batch, classes)`` logits, else the sum.

    >>> logits = torch.randn(2, 5, requires_grad=True)
    >>> compute_loss(logits, "auto")[1], compute_loss(logits, "sum")[1]
    ('cross_entropy', 'sum')
    """
    # the classification every command shares: None, a str or a float is bad input everywhere
    output_tensors(output)
    if callable(loss):
        value = loss(output)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise SpecError("loss callable must return a scalar tensor")
        return value, getattr(loss, "__name__", "custom")
    if loss not in ("auto", "ce", "sum"):
        raise SpecError(f"loss={loss!r} must be 'auto', 'ce', 'sum' or a callable(output) -> scalar tensor")
    tensors = [t for _, t in flatten_outputs(output) if t.is_floating_point() and t.requires_grad]
    if not tensors:
        raise SpecError("the model's output does not depend on any trainable parameter; unfreeze some")
    first = tensors[0]
    classifier = first.ndim == 2 and first.shape[1] > 1
    if loss == "ce" and not classifier:
        raise SpecError(
            f"loss='ce' needs (batch, classes) logits, got shape {format_shape(first.shape)}; use loss='sum'"
        )
    if loss == "ce" or (loss == "auto" and classifier):
        # every output shaped like the logits (aux heads too), against one set of random labels
        labels = torch.randint(0, first.shape[1], (first.shape[0],), device=first.device)
        heads = [t for t in tensors if t.shape == first.shape]
        value = torch.stack([nn.functional.cross_entropy(t.float(), labels) for t in heads]).sum()
        return value, "cross_entropy"
    return torch.stack([t.float().sum() for t in tensors]).sum(), "sum"


@with_headroom
def grad_report(
    model: nn.Module,
    input_size: Any = None,
    input_data: Any = None,
    *,
    loss: LossSpec = "auto",
    mode: Literal["train", "eval"] = "train",
    dtype: torch.dtype | str | None = None,
    **kwargs: Any,
) -> GradReport:
    """One forward and backward on a synthetic batch: per-layer grad norms, unused params, flags.

    ``loss="auto"``: a language model with a head given token ids (``input_size=(batch, length)``)
    gets labels and backpropagates its own loss, as ``check-freeze`` does (next-token for a causal
    LM, cross-entropy on random labels for a classifier); otherwise cross-entropy against random
    labels when the output is (batch, classes) logits, else the sum of the outputs; ``"ce"``,
    ``"sum"`` or a callable(output) force one.

    Args:
        model: The model. Its state is restored afterwards.
        input_size: The synthetic input's shape (batch first), or one per positional input.
        input_data: Real inputs instead of ``input_size``.
        loss: ``"auto"``, ``"ce"``, ``"sum"`` or a callable(output) returning a scalar.
        mode: ``"train"`` or ``"eval"`` during the pass.
        dtype: The synthetic inputs' dtype.
        **kwargs: Keyword arguments for ``forward``.

    Returns:
        The ``GradReport``: per-layer grad norms, the unused params, and non-finite flags.

    Raises:
        SpecError: A bad input, loss or mode, a model on meta, or no trainable param in the output.
        ForwardError: The forward or backward pass failed; names the module.

    >>> m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> r = grad_report(m, input_size=(2, 4))
    >>> [layer.name for layer in r.layers], r.loss, r.unused
    (['0', '2'], 'cross_entropy', ())
    """
    if not isinstance(model, nn.Module):
        raise SpecError(f"grad_report() needs an nn.Module, got {type(model).__name__}")
    model = uncompiled(model)  # the eager modules: Dynamo traces none of our hooks
    if mode not in ("train", "eval"):
        raise SpecError(f"mode={mode!r} must be 'train' or 'eval'")
    named = list(model.named_parameters())
    if not any(p.requires_grad for _, p in named):
        raise SpecError(
            "the model has no trainable parameters; unfreeze some (e.g. torchscope.unfreeze(model, 'fc'))"
        )
    if any(p.is_meta for _, p in named):
        raise SpecError("the model is on the meta device (no values); load it on 'cpu' or 'cuda' for grads")
    with preserved(model):
        model.train(mode == "train")
        for _, p in named:
            p.grad = None  # preserved() puts the user's grad tensors back
        args, kw = prepare_call(model, input_size, input_data, dtype=dtype, kwargs=kwargs)
        own = _add_labels(model, kw) if loss == "auto" and input_size is not None else None
        with torch.enable_grad():
            with CallTracker(model) as tracker:
                tracker.expect(args, kw)
                try:
                    output = model(*args, **kw)
                except Exception as exc:
                    raise ForwardError(tracker.failure_message(exc)) from exc
            mine = reference_loss(output, kw, torch.Generator()) if own is not None else None
            value, loss_name = (mine, own) if mine is not None and own else compute_loss(output, loss)
            value.backward()
        return _build_report(model, named, value, loss_name, mode)


def _add_labels(model: nn.Module, kw: dict[str, Any]) -> str | None:
    """Give a synthetic token batch its labels, so the model computes its own loss; the loss's name.

    None (nothing added) unless ``kw`` holds token ids made for a language model with a head.
    """
    ids = kw.get("input_ids")
    if not isinstance(ids, torch.Tensor) or "labels" in kw or not is_token_model(model) or not takes_labels(model):
        return None
    kw["labels"] = token_labels(model, ids).to(ids.device)
    return "next_token (the model's own)" if is_causal_lm(model) else "cross_entropy (the model's own)"


def _build_report(
    model: nn.Module, named: list[tuple[str, nn.Parameter]], value: torch.Tensor, loss_name: str, mode: str
) -> GradReport:
    with torch.no_grad():
        params = [p.detach() for _, p in named]
        have = [i for i, (_, p) in enumerate(named) if p.grad is not None]
        pnorms = torch._foreach_norm(params) if params else []
        gnorms = torch._foreach_norm([named[i][1].grad for i in have]) if have else []  # type: ignore[misc]
        device = value.device
        flat = torch.stack(
            [value.detach().float().to(device)] + [n.float().to(device) for n in [*pnorms, *gnorms]]
        ).tolist()  # the one host transfer
    loss_value = flat[0]
    pn = dict(zip([n for n, _ in named], flat[1 : 1 + len(named)], strict=True))
    gn = {named[i][0]: v for i, v in zip(have, flat[1 + len(named) :], strict=True)}
    unused = tuple(n for n, p in named if p.requires_grad and n not in gn)
    layers: list[LayerGrad] = []
    for mname, module in model.named_modules():
        own = [
            (f"{mname}.{pname}" if mname else pname) for pname, _ in module.named_parameters(recurse=False)
        ]
        own = [n for n in own if n in pn]
        if not own:
            continue
        trainable = [n for n in own if dict(named)[n].requires_grad]
        got = [gn[n] for n in own if n in gn]
        g = math.sqrt(sum(v * v for v in got)) if got else None
        p = math.sqrt(sum(pn[n] ** 2 for n in own))
        layers.append(
            LayerGrad(
                name=mname,
                type=type(module).__name__,
                params=sum(dict(named)[n].numel() for n in own),
                trainable=sum(dict(named)[n].numel() for n in trainable),
                grad_norm=g,
                param_norm=p,
                ratio=(g / p) if g is not None and p > 0 else None,
                flag="unused" if trainable and g is None else None,
            )
        )

    # Compare the grad/param norm ratio, not the raw grad norm: raw norms grow with layer size, so a
    # small BatchNorm next to a big conv would look "vanishing" when it is not.
    def scale(la: LayerGrad) -> float | None:
        return la.ratio if la.ratio is not None else la.grad_norm

    finite = [v for la in layers if (v := scale(la)) is not None and math.isfinite(v) and v > 0]
    median = statistics.median(finite) if len(finite) >= 3 else None
    flags: list[str] = []
    out: list[LayerGrad] = []
    for la in layers:
        flag = la.flag
        g, v = la.grad_norm, scale(la)
        if g is not None and v is not None:
            if not math.isfinite(g):
                flag = "nonfinite"
            elif median is not None and v < median / GRAD_RATIO:
                flag = "vanishing"
            elif median is not None and v > median * GRAD_RATIO:
                flag = "exploding"
        if flag is not None:
            label = la.name or f"the model ({la.type})"
            detail = ""
            if flag in ("vanishing", "exploding") and v is not None and median:
                detail = f" (grad/param ratio {v:.3g}, median {median:.3g})"
            flags.append(f"{label}: {flag}{detail}")
        out.append(LayerGrad(**{**la.__dict__, "flag": flag}))
    unique = {id(p): p for _, p in named}.values()
    return GradReport(
        model=type(model).__name__,
        loss=loss_name,
        loss_value=loss_value,
        mode=mode,
        layers=tuple(out),
        unused=unused,
        frozen=sum(p.numel() for p in unique if not p.requires_grad),
        trainable=sum(p.numel() for p in unique if p.requires_grad),
        flags=tuple(flags),
        caveats=(unused_caveat(len(unused)),) if unused else (),
        nothing_checked="" if gn else (
            f"no trainable parameter got a gradient (all {len(unused)} unused): the loss does not depend on "
            "the model's parameters; check that forward uses them"
        ),
    )  # fmt: skip
