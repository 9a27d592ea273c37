"""summary(): every module call's input and output shapes, parameters and exact multiply-accumulates.

One forward pass runs under :class:`~torchscope._flops.MacCounter` (FlopCounterMode plus the
attention kernels it misses) with a pre/post hook on every module: each aten op is attributed to
every module call on the stack, so a row's MACs include its children, and ops without a formula are
listed per row instead of silently counting zero. The model is left as found (:func:`preserved`);
the other train/eval mode is run as well to tell when the two return different types.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from torchscope._flops import MacCounter
from torchscope._inputs import describe_structure, flatten_outputs, model_device, prepare_call
from torchscope._state import preserved
from torchscope.errors import ForwardError, SpecError

Mode = Literal["eval", "train"]


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one tensor that went in or came out."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ModuleRow:
    """One call of one module. A module called twice (shared) has two rows (``call`` 0 and 1)."""

    name: str  # qualified name; "" is the model itself
    type: str
    depth: int
    call: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    params: int  # of the module and its children, each tensor once
    trainable_params: int
    mult_adds: int  # of this call, children included
    uncounted_ops: tuple[str, ...]  # aten ops run in this call that have no FLOP formula
    completed: bool = True  # False for calls still running when the forward pass failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "depth": self.depth,
            "call": self.call,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "mult_adds": self.mult_adds,
            "uncounted_ops": list(self.uncounted_ops),
            "completed": self.completed,
        }


@dataclass(frozen=True)
class Summary:
    """What :func:`summary` collected; plain data, render it with ``torchscope.render.summary``."""

    model: str
    mode: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    output_type: str
    rows: tuple[ModuleRow, ...]
    total_params: int
    trainable_params: int
    param_bytes: int
    total_mult_adds: int
    mult_adds_by_op: tuple[tuple[str, int], ...]
    uncounted_ops: tuple[str, ...]
    not_called: tuple[str, ...] = ()
    other_mode: str | None = None
    other_output_type: str | None = None
    other_outputs: tuple[TensorSpec, ...] = ()
    modes_differ: bool = False
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def total_flops(self) -> int:
        """FLOPs counted as 2 per multiply-accumulate."""
        return 2 * self.total_mult_adds

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mode": self.mode,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "output_type": self.output_type,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "param_bytes": self.param_bytes,
            "total_mult_adds": self.total_mult_adds,
            "total_flops": self.total_flops,
            "mult_adds_by_op": dict(self.mult_adds_by_op),
            "uncounted_ops": list(self.uncounted_ops),
            "not_called": list(self.not_called),
            "other_mode": self.other_mode,
            "other_output_type": self.other_output_type,
            "other_outputs": [t.to_dict() for t in self.other_outputs],
            "modes_differ": self.modes_differ,
            "notes": list(self.notes),
            "error": self.error,
            "rows": [r.to_dict() for r in self.rows],
        }


class SummaryForwardError(ForwardError):
    """A forward pass failed during :func:`summary`; ``partial`` holds the rows collected so far."""

    def __init__(self, message: str, partial: Summary) -> None:
        super().__init__(message)
        self.partial = partial


def specs(obj: Any, prefix: str) -> tuple[TensorSpec, ...]:
    """TensorSpecs of every tensor in ``obj`` (see :func:`flatten_outputs`)."""
    return tuple(
        TensorSpec(name, tuple(t.shape), str(t.dtype).removeprefix("torch."))
        for name, t in flatten_outputs(obj, prefix)
    )


def shapes_text(items: tuple[TensorSpec, ...]) -> str:
    """``[1, 3, 8, 8], [1, 10]`` for a message; ``no tensors`` when empty."""
    return ", ".join(str(list(t.shape)) for t in items) or "no tensors"


@dataclass
class _Call:
    name: str
    type: str
    depth: int
    call: int
    inputs: tuple[TensorSpec, ...]
    module_id: int
    outputs: tuple[TensorSpec, ...] = ()
    flops: int = 0
    uncounted: dict[str, None] = field(default_factory=dict)
    completed: bool = False


class CallTracker:
    """Pre/post hooks on every module: a stack of running calls and the list of all calls, in order.

    Used by :func:`summary` (MACs per call) and by :func:`~torchscope.grad_report` (to name the
    module a failing forward pass was in). Hooks are removed on exit, also on error.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names: dict[int, str] = {}
        for name, module in model.named_modules(remove_duplicate=False):
            self.names.setdefault(id(module), name)
        self.calls: list[_Call] = []
        self.stack: list[_Call] = []
        self._count: dict[int, int] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> CallTracker:
        seen: set[int] = set()
        try:
            for module in self.model.modules():
                if id(module) in seen or isinstance(module, torch.jit.ScriptModule):
                    continue  # TorchScript modules take no Python hooks: their ops count in the total only
                seen.add(id(module))
                self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
                self._handles.append(module.register_forward_hook(self._post))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        n = self._count.get(id(module), 0)
        self._count[id(module)] = n + 1
        inputs = specs(args, "input") + specs(kwargs, "input")
        call = _Call(
            self.names.get(id(module), "?"), type(module).__name__, len(self.stack), n, inputs, id(module)
        )
        self.calls.append(call)
        self.stack.append(call)

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        # pop up to this module's own call: a module whose forward raised and was caught inside
        # its parent never reached its post hook
        while self.stack:
            call = self.stack.pop()
            if call.module_id == id(module):
                call.outputs = specs(output, "output")
                call.completed = True
                break

    def on_op(self, op: str, flops: int | None) -> None:
        if flops is None:
            for call in self.stack:
                call.uncounted[op] = None
        else:
            for call in self.stack:
                call.flops += flops

    def failure_message(self, exc: BaseException) -> str:
        """One line: the module that was running, the shapes it got, and what ran before it."""
        first = (str(exc).strip().splitlines() or [""])[0]
        if not self.stack:
            return f"forward pass failed before any module ran: {type(exc).__name__}: {first}"
        running = self.stack[-1]
        label = running.name or f"the model ({running.type})"
        label = f"{label} ({running.type})" if running.name else label
        done = [c.name or c.type for c in self.calls if c.completed]
        before = ", ".join(done[-3:]) if done else "nothing"
        return (
            f"forward pass failed in {label} given {shapes_text(running.inputs)}: "
            f"{type(exc).__name__}: {first}; ran before it: {before}"
        )


def _module_params(model: nn.Module) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for module in model.modules():
        if id(module) not in out:
            params = list(module.parameters())
            out[id(module)] = (
                sum(p.numel() for p in params),
                sum(p.numel() for p in params if p.requires_grad),
            )
    return out


def _has_lazy(model: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()) or any(
        isinstance(b, nn.parameter.UninitializedBuffer) for b in model.buffers()
    )


@contextmanager
def _mode(model: nn.Module, mode: Mode) -> Iterator[None]:
    # preserved() restores the flags; this only sets them
    model.train(mode == "train")
    yield


def summary(
    model: nn.Module,
    input_size: Any = None,
    input_data: Any = None,
    *,
    dtype: torch.dtype | str | None = None,
    mode: Mode = "eval",
    device: torch.device | str | None = None,
    compare_modes: bool = True,
    **kwargs: Any,
) -> Summary:
    """Run one forward pass and collect shapes, parameters and exact MACs per module call.

    ``input_size`` builds random inputs (one shape or a list of shapes); ``input_data`` is a tensor,
    a tuple of arguments, a list, or a dict; extra ``kwargs`` go to ``forward``. ``mode`` picks
    train or eval; with ``compare_modes`` the other mode also runs, and the summary says when the
    two return different types. The model is left exactly as found. A failing forward pass raises
    :class:`~torchscope.errors.ForwardError` (its ``partial`` attribute holds the rows so far).

    >>> s = summary(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), input_size=(2, 8))
    >>> s.total_mult_adds, s.to_dict()["rows"][1]["outputs"][0]["shape"]
    (64, [2, 4])
    """
    if mode not in ("eval", "train"):
        raise SpecError(f"mode={mode!r} must be 'eval' or 'train'")
    if not isinstance(model, nn.Module):
        raise SpecError(f"summary() needs an nn.Module, got {type(model).__name__}")
    notes: list[str] = []
    if device is not None and not isinstance(model, torch.jit.ScriptModule):
        dev, mdev = torch.device(device), model_device(model)
        if dev.type != mdev.type or (dev.index is not None and dev != mdev):
            raise SpecError(
                f"device={str(dev)!r} but the model is on {mdev}; move it with model.to({str(dev)!r})"
            )
    target = model
    if _has_lazy(model):
        # a forward pass would materialise the lazy parameters: run it on a copy
        target = copy.deepcopy(model)
        notes.append("lazy modules were initialised on a copy of the model")
    with preserved(target), torch.no_grad():
        args, kw = prepare_call(target, input_size, input_data, dtype=dtype, device=device, kwargs=kwargs)
        inputs = specs(args, "input") + specs(kw, "input")
        tracker = CallTracker(target)
        counter = MacCounter(tracker.on_op)
        output: Any = None
        error: str | None = None
        with _mode(target, mode), tracker:
            try:
                with counter:
                    output = target(*args, **kw)
            except Exception as exc:
                error = tracker.failure_message(exc)
                cause: BaseException | None = exc
            else:
                cause = None
        other_mode: str | None = None
        other_type: str | None = None
        other_outputs: tuple[TensorSpec, ...] = ()
        if error is None and compare_modes:
            other_mode = "train" if mode == "eval" else "eval"
            try:
                with _mode(target, other_mode):  # type: ignore[arg-type]
                    other = target(*args, **kw)
                other_type, other_outputs = describe_structure(other), specs(other, "output")
            except Exception as exc:
                notes.append(
                    f"{other_mode}-mode forward failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                )
    result = _build_summary(
        target, tracker, counter, mode, inputs, output, error, other_mode, other_type, other_outputs, notes
    )
    if error is not None:
        raise SummaryForwardError(error, result) from cause
    return result


def _build_summary(
    model: nn.Module,
    tracker: CallTracker,
    counter: MacCounter,
    mode: str,
    inputs: tuple[TensorSpec, ...],
    output: Any,
    error: str | None,
    other_mode: str | None,
    other_type: str | None,
    other_outputs: tuple[TensorSpec, ...],
    notes: list[str],
) -> Summary:
    params = _module_params(model)
    rows = []
    for c in tracker.calls:
        p, tp = params.get(c.module_id, (0, 0))
        rows.append(
            ModuleRow(
                c.name,
                c.type,
                c.depth,
                c.call,
                c.inputs,
                c.outputs,
                p,
                tp,
                c.flops // 2,
                tuple(c.uncounted),
                c.completed,
            )
        )
    called = {c.module_id for c in tracker.calls}
    # nn.MultiheadAttention uses its out_proj's weights functionally, without calling it: that
    # child is not an unused branch.
    used_functionally = {
        id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention) and id(m) in called
    }
    not_called = tuple(
        name
        for name, m in model.named_modules()
        if id(m) not in called
        and id(m) not in used_functionally
        and name
        and not isinstance(m, nn.ModuleDict | nn.ModuleList)
    )
    unique = list({id(p): p for p in model.parameters()}.values())
    uncounted: dict[str, None] = {}
    for c in tracker.calls:
        uncounted.update(c.uncounted)
    output_type = describe_structure(output) if error is None else "(failed)"
    outputs = specs(output, "output") if error is None else ()
    differ = other_type is not None and (
        other_type != output_type or [t.name for t in other_outputs] != [t.name for t in outputs]
    )
    if differ:
        notes.append(f"{other_mode} mode returns {other_type}, {mode} mode returns {output_type}")
    return Summary(
        model=type(model).__name__,
        mode=mode,
        inputs=inputs,
        outputs=outputs,
        output_type=output_type,
        rows=tuple(rows),
        total_params=sum(p.numel() for p in unique),
        trainable_params=sum(p.numel() for p in unique if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in unique),
        total_mult_adds=counter.total_macs,
        mult_adds_by_op=tuple(sorted(counter.macs_by_op().items(), key=lambda kv: -kv[1])),
        uncounted_ops=tuple(sorted(uncounted)),
        not_called=not_called,
        other_mode=other_mode,
        other_output_type=other_type,
        other_outputs=other_outputs,
        modes_differ=differ,
        notes=tuple(notes),
        error=error,
    )
