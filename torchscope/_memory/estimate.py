"""``estimate_memory``: trace a step under fake tensors and report its peak and what is alive at it."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from torchscope._compiled import uncompiled
from torchscope._format import format_bytes, format_shape
from torchscope._loader import default_input_size
from torchscope._memory.cards import MARGIN, capacity_of
from torchscope._memory.diagnose import ModelError
from torchscope._memory.fake_step import OptimizerArg, Trace, UserStep, reporting_units, trace_step
from torchscope._memory.fit import fit_batch_size
from torchscope._memory.schema import KINDS, MemoryReport, ModuleMemory
from torchscope._memory.step import Batch, StepConfig
from torchscope._memory.storage import allocator_rounding, rounded
from torchscope._parsing import INT64_MAX, dtype_name, parse_input_size
from torchscope._progress import ProgressFn
from torchscope._tokens import is_token_model
from torchscope.errors import TorchscopeError

NOTE_CUDA = (
    "tensor storage only, each allocation rounded to the CUDA caching allocator's 512-byte blocks, "
    "as torch.cuda.max_memory_allocated() counts it; the CUDA context, cuBLAS/cuDNN workspaces and "
    "fragmentation come on top (--fit keeps a margin for them)"
)
NOTE_CPU = "tensor storage only, exact bytes (no allocator rounding)"
NOTE_AMP_CUDA = (
    "autocast casts as on the CPU (the fake tensors live there); CUDA autocast also runs softmax, "
    "layer_norm and the losses in fp32, so --amp on attention models may be low by those copies"
)


def batch_of(inputs: Any) -> Batch:
    """(shape, dtype) pairs from a tensor, a shape, or a sequence of them.

    >>> batch_of((2, 3, 8, 8))
    (((2, 3, 8, 8), torch.float32),)
    """
    if isinstance(inputs, torch.Tensor):
        return ((tuple(inputs.shape), inputs.dtype),)
    if isinstance(inputs, torch.Size) or (
        isinstance(inputs, Sequence) and inputs and all(isinstance(d, int) for d in inputs)
    ):
        return ((tuple(int(d) for d in inputs), torch.float32),)
    if isinstance(inputs, Sequence) and inputs and not isinstance(inputs, str | bytes):
        out: list[tuple[tuple[int, ...], torch.dtype]] = []
        for item in inputs:
            out.extend(batch_of(item))
        return tuple(out)
    raise TorchscopeError(
        f"inputs {type(inputs).__name__} is not a tensor, a shape or a list of them; "
        "pass e.g. torch.randn(8, 3, 224, 224) or (8, 3, 224, 224)"
    )


def with_batch_size(batch: Batch, size: int) -> Batch:
    """``batch`` with its first dimension set to ``size`` on every input."""
    return tuple(((size, *shape[1:]) if shape else shape, dtype) for shape, dtype in batch)


def _modules(live: list[Any], order: list[str]) -> tuple[ModuleMemory, ...]:
    field_of = {k: k.replace(" ", "_") for k in KINDS}
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in live:
        owned = a.kind in ("parameters", "buffers", "gradients", "optimizer state")
        name = (a.owner or "(outside)") if owned else a.module
        table[name][field_of[a.kind]] += a.nbytes
    rank = {name: i for i, name in enumerate(order)}
    names = sorted(table, key=lambda n: (rank.get(n, len(rank)), n))
    return tuple(ModuleMemory(n, **table[n]) for n in names)


def report_of(trace: Trace, model: nn.Module, label: str, batch: Batch, config: StepConfig) -> MemoryReport:
    """The report of a trace: peak, its phase, and what is alive at it."""
    peak, clock, derived = trace.evaluate()
    live = trace.live_at(clock, derived)
    born = [a for a in trace.allocations if a.born == clock]
    phase, op = (born[0].phase, born[0].op) if born else ("forward", "")
    breakdown = {k: 0 for k in KINDS}
    for a in live:
        breakdown[a.kind] += a.nbytes
    block = allocator_rounding(config.device)
    seen: set[int] = set()
    weights = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            weights += rounded(t.numel() * _itemsize(t, config), block)
    order = reporting_units(model)
    params = list(model.parameters())
    return MemoryReport(
        model=label,
        inputs=tuple(shape for shape, _ in batch),
        step=config.describe(),
        device=config.device,
        block=block,
        optimizer=config.optimizer,
        amp=config.amp,
        dtype=config.dtype,
        channels_last=config.channels_last,
        grad_checkpointing=config.grad_checkpointing,
        mode=config.mode,
        peak=peak,
        phase=phase,
        step_of_peak=trace.step_of(clock, derived),
        op=op,
        breakdown=tuple(breakdown.items()),
        modules=_modules(live, order),
        weights=weights,
        trainable=sum(p.numel() for p in params if p.requires_grad),
        total_params=sum(p.numel() for p in params),
        notes=_notes(config),
    )


def _notes(config: StepConfig) -> tuple[str, ...]:
    if config.device == "cpu":
        return (NOTE_CPU,)
    return (NOTE_CUDA, NOTE_AMP_CUDA) if config.amp != "off" else (NOTE_CUDA,)


def _itemsize(t: torch.Tensor, config: StepConfig) -> int:
    if t.dtype.is_floating_point and config.dtype != "fp32":
        return config.param_dtype.itemsize
    return t.dtype.itemsize


def estimate_memory(
    model: nn.Module,
    inputs: Any,
    step: UserStep | None = None,
    optimizer: OptimizerArg = "adamw",
    *,
    amp: str = "off",
    dtype: str = "fp32",
    channels_last: bool = False,
    grad_checkpointing: bool = False,
    mode: str = "train",
    device: str = "cuda",
    steps: int = 2,
    fit: str | int | None = None,
    label: str | None = None,
    progress: ProgressFn | None = None,
) -> MemoryReport:
    """Predict the peak memory of training steps of ``model`` on ``inputs``, allocating nothing.

    The step runs under fake tensors (or on the meta device): parameters and buffers are swapped for
    fake ones for the duration of the call, so a model of any size, with real or meta weights, costs
    no memory. ``inputs`` is a tensor, a shape, or a list of them (only shapes and dtypes are used).
    ``optimizer`` is ``"sgd"``, ``"sgd-momentum"``, ``"adamw"`` or a callable taking the trainable
    parameters. ``step(model, batch, optimizer)``, when given, replaces the built-in step (zero
    grads, forward, cross-entropy, backward, optimizer step) and is called ``steps`` times. Frozen
    parameters (``requires_grad=False``) get no gradient and no optimizer state. ``device`` is the
    target whose allocator rounding is modelled (``"cuda"`` or ``"cpu"``). ``fit`` (bytes, ``"24GiB"``
    or a GPU name such as ``"a100-40gb"``) adds the largest batch size (first dimension of every
    input) whose peak fits, after the margin of :data:`~torchscope._memory.cards.MARGIN`;
    ``progress(phase, done, total)``, when given, is called after each trace of that search (nothing
    is shown otherwise).

    Args:
        model: The model; real or meta weights, never allocated.
        inputs: A tensor, a shape, or a list of them (only shapes and dtypes are used).
        step: ``step(model, batch, optimizer)`` replacing the built-in training step.
        optimizer: ``"sgd"``, ``"sgd-momentum"``, ``"adamw"`` or a callable taking the trainable params.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"`` autocast.
        dtype: The parameters' dtype (``"fp32"``, ``"bf16"``, ``"fp16"``).
        channels_last: Use the channels-last memory format.
        grad_checkpointing: Turn on the model's gradient checkpointing (transformers models).
        mode: ``"train"`` or ``"eval"`` (train/eval flags during the steps).
        device: The target whose allocator rounding is modelled, ``"cuda"`` or ``"cpu"``.
        steps: Training steps to trace.
        fit: A budget (bytes, ``"24GiB"`` or a GPU name) for the largest batch size that fits.
        label: The model's name in the report.
        progress: Called as ``progress(phase, done, total)`` after each trace of the ``fit`` search.

    Returns:
        The ``MemoryReport``: the peak, when it happens, its parts, and with ``fit`` the batch size.

    Raises:
        TorchscopeError: Bad options, or a step that cannot run without data (an op whose output
            shape depends on values), with no number given.

    >>> import torch, torchscope
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    >>> r = torchscope.estimate_memory(model, (32, 64), optimizer="sgd", device="cpu")
    >>> r.kind("parameters") == sum(p.numel() * 4 for p in model.parameters())
    True
    >>> r.phase
    'backward'
    """
    config = StepConfig(
        optimizer=optimizer if isinstance(optimizer, str) else "adamw",
        amp=amp, dtype=dtype, channels_last=channels_last, grad_checkpointing=grad_checkpointing,
        mode=mode, device=device, steps=steps,
    )  # fmt: skip
    if not isinstance(model, nn.Module):
        raise TorchscopeError(f"model is a {type(model).__name__}, not an nn.Module")
    model = uncompiled(model)  # fake tensors through the eager modules, never through Dynamo
    batch = batch_of(inputs)
    if is_token_model(model):  # shapes given for a language model are token ids
        batch = tuple((shape, torch.int64 if dt.is_floating_point else dt) for shape, dt in batch)
    card = None if fit is None else _capacity(fit)  # a bad --fit is refused before any trace
    trace = trace_step(model, batch, config, step=step, optimizer=optimizer)
    report = report_of(trace, model, label or type(model).__name__, batch, config)
    if card is not None:
        capacity, target = card
        result = fit_batch_size(
            model, batch, config, capacity, target, MARGIN, report.weights, with_batch=with_batch_size,
            step=step, optimizer=optimizer, known=(report.batch_size, trace) if report.batch_size > 1 else None,
            progress=progress,
        )  # fmt: skip
        report = dataclasses.replace(report, fit=result)
    if not isinstance(optimizer, str) or step is not None:
        report = _relabel(report, optimizer, step)
    return report


def _capacity(fit: str | int) -> tuple[int, str]:
    if isinstance(fit, bool) or not isinstance(fit, int | str):
        raise TorchscopeError(f"fit={fit!r} must be bytes (an int), a size such as '24GiB' or a GPU name")
    if isinstance(fit, str):
        return capacity_of(fit)
    if fit <= 0:
        raise TorchscopeError(f"fit={fit} must be a positive number of bytes, e.g. 24 * 2**30")
    return fit, format_bytes(fit)


def memory_of_spec(
    model: nn.Module,
    spec: str,
    *,
    input_size: str | None,
    batch_size: int | None,
    dtype: str | None,
    fit: str | None = None,
    **options: Any,
) -> MemoryReport:
    """``estimate_memory`` from the command line's values: shapes, batch size and dtype as text.

    ``input_size`` is one sample's shape (``3,224,224``) whenever the batch size is ours to set:
    with ``batch_size`` (prepended to every shape) or with ``fit`` (which searches it; the report
    is then at batch 1). Otherwise it is the whole batch's shape (``64,3,224,224``). A float
    ``dtype`` is the step's dtype (weights and inputs); an integer one makes token-id inputs.
    """
    per_sample = batch_size is not None or fit is not None
    if input_size is not None:
        shapes = [tuple(s) for s in parse_input_size(input_size)]
        if per_sample:
            shapes = [(batch_size or 1, *s) for s in shapes]
    else:
        shapes = [default_input_size(spec, batch=batch_size or 1)]
    step_dtype, input_dtype = "fp32", torch.float32
    if dtype is not None:
        name = dtype_name(dtype)
        if name in ("bfloat16", "float16"):
            step_dtype = {"bfloat16": "bf16", "float16": "fp16"}[name]
        elif name != "float32":
            input_dtype = getattr(torch, name)
    for s in shapes:
        if math.prod(s) > INT64_MAX:
            raise TorchscopeError(
                f"--batch-size {batch_size} with --input-size {input_size}: the batch {format_shape(s)} has "
                f"{math.prod(s):.3g} elements, more than a tensor can hold (2^63 - 1); give a smaller batch size"
            )
    inputs = [torch.empty(s, dtype=input_dtype, device="meta") for s in shapes]
    try:
        return estimate_memory(model, inputs, dtype=step_dtype, label=spec, fit=fit, **options)
    except ModelError as exc:
        if input_size is None or not exc.in_forward:
            raise
        raise ModelError(f"{exc}{_input_size_note(input_size, batch_size, fit, shapes[0])}") from None


def _input_size_note(input_size: str, batch_size: int | None, fit: str | None, shape: tuple[int, ...]) -> str:
    """What ``--input-size`` was read as, for the error of a forward pass that failed on it."""
    if batch_size is None and fit is None:
        return (
            f" (--input-size {input_size} is the whole batch, batch dimension first, without --batch-size "
            "or --fit; with either it is one sample's shape)"
        )
    why = f"--batch-size {batch_size}" if batch_size is not None else "--fit, which searches the batch size"
    return (
        f" (with {why}, --input-size {input_size} is one sample's shape, so the model got "
        f"{format_shape(shape)}; leave the batch dimension out of --input-size)"
    )


def _relabel(report: MemoryReport, optimizer: OptimizerArg, step: UserStep | None) -> MemoryReport:
    what = "your step" if step is not None else report.step
    opt = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "custom")
    return dataclasses.replace(report, step=what, optimizer=opt)
