"""The reference fine-tuning step behind ``torchscope check-freeze``: synthetic inputs, cross-entropy
against random labels, an optimizer over the trainable params, checked by :func:`check_step`."""

from __future__ import annotations

import copy
import dataclasses
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from torchscope._check.outputs import output_tensors
from torchscope._check.step import Mode, check_step
from torchscope._checkparts.config import DEFAULT_STEP, OPTIMIZERS, ReferenceStep
from torchscope._checkparts.plan import (
    collect_tensors,
    is_norm_with_stats,
    make_plan,
    module_frozen,
    select_names,
    unwrap,
)
from torchscope._checkparts.report import StepCheck
from torchscope._compiled import uncompiled
from torchscope._format import format_shape
from torchscope._freeze import find_head
from torchscope._inputs import dtype_hint, parse_dtype, random_input
from torchscope._recursion import with_headroom
from torchscope._tokens import is_token_model, own_loss, token_batch
from torchscope.errors import ForwardError, SpecError

__all__ = [
    "OPTIMIZERS",
    "check_freeze",
    "expected_frozen_names",
    "reference_loss",
    "synthetic_loss",
    "tensor_counts",
]


def expected_frozen_names(
    model: nn.Module,
    *,
    freeze: Sequence[str] = (),
    unfreeze: Sequence[str] = (),
    freeze_backbone: bool = False,
) -> list[str] | None:
    """The param and buffer names the freeze options ask to freeze (None when no option was given).

    Names, not tensors: a tied tensor frozen under one name and expected to train under another
    shows up as a ``tied_conflict`` when these names are passed as ``check_step(frozen=...)``.
    """
    if not (freeze or freeze_backbone):
        return None
    params, buffers = collect_tensors(model)
    names = [n for t in params for n in t.names] + [n for b in buffers for n in b.names]
    selected: set[str] = set()
    if freeze_backbone:
        head = find_head(model)
        selected |= {n for n in names if not (n == head or n.startswith(head + "."))}
    if freeze:
        selected |= select_names(names, list(freeze))
    if unfreeze:
        selected -= select_names(names, list(unfreeze))
    return [n for n in names if n in selected]


def synthetic_loss(out: Any, generator: torch.Generator) -> torch.Tensor | None:
    """Cross-entropy of every (N, C, ...) float output against random labels; None if nothing needs grad.

    An output with no float tensor (``None``, a ``str``, labels) is bad input: :func:`output_tensors`.
    """
    losses = []
    for t in output_tensors(out):
        if not (t.is_floating_point() and t.requires_grad):
            continue
        if t.dim() >= 2:
            labels = torch.randint(0, t.shape[1], (t.shape[0], *t.shape[2:]), generator=generator)
            losses.append(nn.functional.cross_entropy(t.float(), labels.to(t.device)))
        else:
            losses.append(t.float().mean())
    return torch.stack(losses).sum() if losses else None


def reference_loss(out: Any, batch: Mapping[str, Any], generator: torch.Generator) -> torch.Tensor | None:
    """The loss of the reference step: the model's own when ``batch`` has ``labels`` and it returned
    one (next-token loss of a causal LM, cross-entropy of a classifier on the random labels), else
    :func:`synthetic_loss`. ``check-freeze``, ``grads`` and ``bench`` all take their loss from here.

    >>> reference_loss({"loss": torch.tensor(2.0, requires_grad=True)}, {"labels": None}, torch.Generator())
    tensor(2., requires_grad=True)
    """
    own = own_loss(out) if "labels" in batch else None
    return own if own is not None and own.requires_grad else synthetic_loss(out, generator)


def tensor_counts(model: nn.Module, frozen: str | Sequence[str] | None = None) -> tuple[int, int]:
    """(params and buffers held frozen, params expected to train) by a check of ``model``; a 0 is a
    half of the check with nothing to look at.

    >>> tensor_counts(nn.Linear(2, 2)), tensor_counts(nn.Linear(2, 2), ["bias"]), tensor_counts(nn.Linear(2, 2), "*")
    ((0, 2), (1, 1), (2, 0))
    """
    plan = make_plan(unwrap(model)[0], frozen)
    return len(plan.frozen) + len(plan.frozen_buffers), len(plan.trainable)


def copy_model(model: nn.Module) -> nn.Module:
    """A copy to train that shares nothing with ``model``: ``copy.deepcopy``, except for TorchScript,
    whose deep copies hold params that are not leaves (no optimizer takes them): saved and loaded
    again, which keeps the values, the ``requires_grad`` flags and the device (tested in
    tests/test_check_by_name.py).
    """
    if not isinstance(model, torch.jit.ScriptModule):
        return copy.deepcopy(model)
    buf = io.BytesIO()
    device = next((t.device for t in [*model.parameters(), *model.buffers()]), torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated; copying it is our job
        torch.jit.save(model, buf)
        buf.seek(0)
        return torch.jit.load(buf, map_location=device)


def _inputs(input_size: Sequence[int] | Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """One shape or several (one per positional input), each of positive integers."""
    items: list[Any] = list(input_size)
    nested = bool(items) and all(isinstance(s, Sequence) for s in items)
    shapes: list[tuple[int, ...]] = [tuple(s) for s in items] if nested else [tuple(items)]
    for size in shapes:
        if not size or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in size):
            raise SpecError(f"input_size={tuple(input_size)!r} must be positive integers, e.g. (2, 3, 224, 224)")
    return shapes


class StepObserver(Protocol):
    """Something that watches the reference run beside ``check_step``: started on the copy and its
    optimizer before the steps, stopped after them, and given the report to add its view to."""

    def start(self, net: nn.Module, opt: torch.optim.Optimizer | None, frozen: str | Sequence[str] | None,
              steps: int) -> None: ...  # fmt: skip

    def stop(self) -> None: ...

    def finish(self, report: StepCheck) -> StepCheck: ...


@with_headroom  # it deep-copies the model: room for a deep one
def check_freeze(
    model: nn.Module,
    *,
    input_size: Sequence[int] | Sequence[Sequence[int]],
    optimizer: str = DEFAULT_STEP.optimizer,
    lr: float = DEFAULT_STEP.lr,
    momentum: float = DEFAULT_STEP.momentum,
    weight_decay: float = DEFAULT_STEP.weight_decay,
    steps: int = DEFAULT_STEP.steps,
    train_bn: bool = DEFAULT_STEP.train_bn,
    frozen: str | Sequence[str] | None = None,
    mode: Mode = "exact",
    seed: int = DEFAULT_STEP.seed,
    dtype: torch.dtype | str | None = None,
    observer: StepObserver | None = None,
) -> StepCheck:
    """Run a reference fine-tuning step on a *copy* of ``model`` and check it with :func:`check_step`.

    ``observer`` watches the same run beside the check (``check-freeze`` passes the freeze guard's
    view, :class:`torchscope._guard.view.GuardView`, which adds the step each change first appeared at).

    Synthetic inputs of ``input_size`` (one shape, or one per positional input), cross-entropy
    against random labels, an optimizer over the trainable params, ``steps`` steps,
    ``model.train()`` before each; a language model (``hf:``) given ``(batch, length)`` gets token
    ids and its own loss (next-token for a causal LM, on random labels for a classifier);
    ``train_bn=False`` puts the frozen norm layers back in eval mode
    (the fix for moving running stats). ``dtype`` is the inputs' dtype (default: the model's float
    dtype); an integer one (``"long"``) gives 0/1 ids, valid indices of any embedding. The defaults are :class:`ReferenceStep`'s, the step that
    ``torchscope report`` runs too; the report's ``reference`` names the step that ran.
    ``model`` is not touched.

    Args:
        model: The model, with its parameters frozen as the fine-tune freezes them. Not modified.
        input_size: The input shape (batch first), or one shape per positional input.
        optimizer: ``"sgd"`` or ``"adamw"``, over the trainable params.
        lr: Learning rate.
        momentum: SGD momentum.
        weight_decay: Weight decay.
        steps: Training steps to run.
        train_bn: ``False`` puts the frozen norm layers in eval mode before each step.
        frozen: Glob patterns of what must stay unchanged; default: what is frozen now.
        mode: ``"exact"`` (copy the frozen tensors) or ``"fingerprint"`` (one number per tensor).
        seed: Seed of the synthetic inputs and labels.
        dtype: The inputs' dtype; default the model's float dtype; an integer one gives token ids.
        observer: Watches the same run beside the check (the freeze guard's view).

    Returns:
        The ``StepCheck``: ``ok``, every violation with its cause, and what was checked.

    Raises:
        TorchscopeError: A bad option or input shape, or the model's forward or backward failed
            (``ForwardError``, naming the module).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    >>> net[:2].requires_grad_(False)  # doctest: +ELLIPSIS
    Sequential(...)
    >>> [v.name for v in check_freeze(net, input_size=(8, 4)).violations]
    ['1.running_mean', '1.running_var', '1.num_batches_tracked']
    >>> check_freeze(net, input_size=(8, 4), train_bn=False).ok
    True
    """
    ref = ReferenceStep(optimizer, lr, momentum, weight_decay, steps, train_bn, seed)
    shapes = _inputs(input_size)
    net = copy_model(uncompiled(model))  # the eager step: Dynamo traces none of the check's hooks
    inner, _ = unwrap(net)
    device = next((t.device for t in [*inner.parameters(), *inner.buffers()]), torch.device("cpu"))
    given = parse_dtype(dtype)
    float_given = given is not None and (given.is_floating_point or given.is_complex)
    in_dtype = given or next((p.dtype for p in inner.parameters() if p.is_floating_point()), torch.float32)
    gen = torch.Generator().manual_seed(ref.seed)
    # a language model gets token ids (and labels: its own loss); a half model gets half inputs
    tokens = is_token_model(inner) and len(shapes) == 1 and len(shapes[0]) <= 2 and not float_given
    ids = {"dtype": given} if given is not None and not float_given else {}
    kw = token_batch(inner, shapes[0], device=device, generator=gen, labels=True, **ids) if tokens else {}
    xs = [] if tokens else [random_input(size, in_dtype, device, gen) for size in shapes]
    trainable = [p for p in inner.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer | None = None
    if trainable:
        if ref.optimizer == "sgd":
            opt = torch.optim.SGD(trainable, lr=ref.lr, momentum=ref.momentum, weight_decay=ref.weight_decay)
        elif ref.optimizer == "adam":
            opt = torch.optim.Adam(trainable, lr=ref.lr, betas=(ref.momentum, 0.999), weight_decay=ref.weight_decay)
        else:
            opt = torch.optim.AdamW(trainable, lr=ref.lr, betas=(ref.momentum, 0.999), weight_decay=ref.weight_decay)
    frozen_modules = module_frozen(inner)
    frozen_norms = [m for name, m in inner.named_modules() if is_norm_with_stats(m) and frozen_modules.get(name)]

    def step() -> None:
        for _ in range(ref.steps):
            net.train()
            if not ref.train_bn:
                for m in frozen_norms:
                    m.eval()
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            try:
                out = net(*xs, **kw)
            except Exception as exc:
                shown = ", ".join(format_shape(size) for size in shapes)
                first = str(exc).splitlines()[0] if str(exc) else ""
                fix = dtype_hint(first, [str(x.dtype).removeprefix("torch.") for x in xs])
                raise ForwardError(
                    f"forward pass on an input of size {shown} failed: {type(exc).__name__}: "
                    f"{first}{fix or '; pass a fitting --input-size (and --dtype)'}"
                ) from None
            loss = reference_loss(out, kw, gen)
            if loss is not None:
                loss.backward()
            if opt is not None:
                opt.step()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ref.seed)
        if observer is not None:
            observer.start(net, opt, frozen, ref.steps)
        try:
            report = check_step(net, step, optimizer=opt, frozen=frozen, mode=mode)
        finally:
            if observer is not None:
                observer.stop()
    report = dataclasses.replace(report, reference=ref)
    return report if observer is None else observer.finish(report)
