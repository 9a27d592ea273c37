"""Collect a summary: one forward pass under the MAC counter with a hook on every module.

Each aten op is attributed to every module call on the stack, so a row's MACs include its children,
and ops with real arithmetic but no formula are listed per row (the row's count is then a lower
bound) instead of silently counting zero. The model is left as found (:func:`preserved`); the other
train/eval mode is run as well to tell when the two return different types.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn

from torchscope._flops import MacCounter, OpKind
from torchscope._inputs import describe_structure, model_device, prepare_call
from torchscope._state import preserved
from torchscope._summary.calls import CallTracker
from torchscope._summary.data import DisplayOptions, ModuleRow, Summary, TensorSpec, specs
from torchscope.errors import ForwardError, SpecError

Mode = Literal["eval", "train"]


class SummaryForwardError(ForwardError):
    """A forward pass failed during :func:`summary`: no numbers, only where it stopped."""


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


def _layout(module: nn.Module) -> tuple[tuple[int, ...] | None, int | None]:
    # kernel_size and groups for torchinfo's columns of the same names
    k = getattr(module, "kernel_size", None)
    kernel = (k,) if isinstance(k, int) else tuple(int(d) for d in k) if isinstance(k, tuple) else None
    g = getattr(module, "groups", None)
    return kernel, g if isinstance(g, int) else None


def _unique_params(model: nn.Module) -> list[nn.Parameter]:
    return list({id(p): p for p in model.parameters()}.values())


def check_model(model: Any, device: torch.device | str | None) -> None:
    """The model is an nn.Module on ``device`` (when given): torchscope never moves it."""
    if not isinstance(model, nn.Module):
        raise SpecError(f"summary() needs an nn.Module, got {type(model).__name__}")
    if device is not None and not isinstance(model, torch.jit.ScriptModule):
        dev, mdev = torch.device(device), model_device(model)
        if dev.type != mdev.type or (dev.index is not None and dev != mdev):
            raise SpecError(
                f"device={str(dev)!r} but the model is on {mdev}; move it with model.to({str(dev)!r})"
            )


def parameter_summary(model: nn.Module, display: DisplayOptions | None = None) -> Summary:
    """The parameter table without a forward pass (no input given): no shapes, no mult-adds."""
    check_model(model, None)
    params = _module_params(model)
    rows = []
    for name, module in model.named_modules():
        p, tp = params[id(module)]
        kernel, groups = _layout(module)
        depth = name.count(".") + 1 if name else 0
        rows.append(
            ModuleRow(name, type(module).__name__, depth, 0, (), (), p, tp, None, (), True, kernel, groups)
        )
    unique = _unique_params(model)
    return Summary(
        model=type(model).__name__,
        mode="train" if model.training else "eval",
        inputs=(),
        outputs=(),
        output_type="(no forward pass)",
        rows=tuple(rows),
        total_params=sum(p.numel() for p in unique),
        trainable_params=sum(p.numel() for p in unique if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in unique),
        total_mult_adds=None,
        mult_adds_by_op=(),
        uncounted_ops=(),
        notes=("no input given: parameters only; pass input_size or input_data for shapes and mult-adds",),
        display=display,
    )


def collect_summary(
    model: nn.Module,
    input_size: Any = None,
    input_data: Any = None,
    *,
    dtype: Any = None,
    mode: Mode = "eval",
    device: torch.device | str | None = None,
    compare_modes: bool = True,
    kwargs: dict[str, Any] | None = None,
    display: DisplayOptions | None = None,
) -> Summary:
    """Run one forward pass and collect shapes, parameters and exact MACs per module call."""
    if mode not in ("eval", "train"):
        raise SpecError(f"mode={mode!r} must be 'eval' or 'train'")
    check_model(model, device)
    notes: list[str] = []
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
        target.train(mode == "train")
        with tracker:
            try:
                with counter:
                    output = target(*args, **kw)
            except Exception as exc:
                raise SummaryForwardError(tracker.failure_message(exc)) from exc
        other_mode: str | None = None
        other_type: str | None = None
        other_outputs: tuple[TensorSpec, ...] = ()
        if compare_modes:
            other_mode = "train" if mode == "eval" else "eval"
            try:
                target.train(other_mode == "train")
                other = target(*args, **kw)
                other_type, other_outputs = describe_structure(other), specs(other, "output")
            except Exception as exc:
                first = (str(exc).splitlines() or [""])[0]
                notes.append(f"{other_mode}-mode forward failed: {type(exc).__name__}: {first}")
    return _build_summary(
        target, tracker, counter, mode, inputs, output, other_mode, other_type, other_outputs, notes, display
    )


def _build_summary(
    model: nn.Module,
    tracker: CallTracker,
    counter: MacCounter,
    mode: str,
    inputs: tuple[TensorSpec, ...],
    output: Any,
    other_mode: str | None,
    other_type: str | None,
    other_outputs: tuple[TensorSpec, ...],
    notes: list[str],
    display: DisplayOptions | None,
) -> Summary:
    params = _module_params(model)
    modules = {id(m): m for m in model.modules()}
    rows = []
    for c in tracker.calls:
        p, tp = params.get(c.module_id, (0, 0))
        kernel, groups = _layout(modules[c.module_id]) if c.module_id in modules else (None, None)
        rows.append(
            ModuleRow(
                c.name, c.type, c.depth, c.call, c.inputs, c.outputs, p, tp, c.flops // 2,
                tuple(c.uncounted), c.completed, kernel, groups,
            )
        )  # fmt: skip
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
    unique = _unique_params(model)
    missing = counter.missing
    output_type = describe_structure(output)
    outputs = specs(output, "output")
    differ = other_type is not None and (
        other_type != output_type or [t.name for t in other_outputs] != [t.name for t in outputs]
    )
    if differ:
        notes.append(f"{other_mode} mode returns {other_type}, {mode} mode returns {output_type}")
    if missing:
        notes.append(
            f"mult-adds is a lower bound: {', '.join(missing)} ran with no FLOP formula "
            "and may do multiply-accumulates"
        )
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
        uncounted_ops=missing,
        not_called=not_called,
        other_mode=other_mode,
        other_output_type=other_type,
        other_outputs=other_outputs,
        modes_differ=differ,
        notes=tuple(notes),
        ops=tuple(sorted((op, kind.value) for op, kind in counter.kinds.items())),
        display=display,
    )


__all__ = ["Mode", "OpKind", "SummaryForwardError", "check_model", "collect_summary", "parameter_summary"]
