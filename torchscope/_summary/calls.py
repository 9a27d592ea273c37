"""Which module call is running: pre/post hooks on every module, and the message of a failed forward."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from torchscope._summary.data import TensorSpec, shapes_text, specs
from torchscope.errors import ForwardError


@dataclass
class Call:
    """One module call while it is recorded (mutable; the summary freezes it into a ModuleRow)."""

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

    Used by :func:`summary` (MACs per call), :func:`~torchscope.grad_report` and
    :func:`run_forward` (to name the module a failing forward pass was in). Hooks are removed on
    exit, also on error.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names: dict[int, str] = {}
        for name, module in model.named_modules(remove_duplicate=False):
            self.names.setdefault(id(module), name)
        self.calls: list[Call] = []
        self.stack: list[Call] = []
        self._count: dict[int, int] = {}
        self._handles: list[Any] = []
        self._floats: dict[int, bool] = {}

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
        inputs = specs(args, "input") + specs(kwargs, "input") if kwargs else specs(args, "input")
        call = Call(
            self.names.get(id(module), "?"), type(module).__name__, len(self.stack), n, inputs, id(module)
        )
        if id(module) not in self._floats:
            self._floats[id(module)] = any(p.is_floating_point() for p in module.parameters(recurse=False))
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
        """One line: the module that was running, the shapes it got, what ran before it, and a fix."""
        first = (str(exc).strip().splitlines() or [""])[0]
        if not self.stack:
            return f"forward pass failed before any module ran: {type(exc).__name__}: {first}"
        running = self.stack[-1]
        label = f"{running.name} ({running.type})" if running.name else f"the model ({running.type})"
        done = [c.name or c.type for c in self.calls if c.completed]
        before = ", ".join(done[-3:]) if done else "nothing"
        message = (
            f"forward pass failed in {label} given {shapes_text(running.inputs)}: "
            f"{type(exc).__name__}: {first}; ran before it: {before}"
        )
        return message + self._hint(running, first)

    def _hint(self, running: Call, error: str) -> str:
        if "Expected more than 1 value per channel when training" in error:
            return "; use batch >= 2 (a norm layer in train mode needs more than one value per channel)"
        dtypes = {t.dtype for t in running.inputs}
        integer = {d for d in dtypes if d.startswith(("int", "uint", "bool"))}
        if integer and dtypes == integer and self._floats.get(running.module_id, False):
            return (
                f"; the input is {', '.join(sorted(integer))} but the module's weights are floating point: "
                "give float inputs (--dtype float32)"
            )
        return ""


def run_forward(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``model(*args, **kwargs)``; a failure is a :class:`ForwardError` naming the module and its inputs."""
    with CallTracker(model) as tracker:
        try:
            return model(*args, **kwargs)
        except Exception as exc:
            raise ForwardError(tracker.failure_message(exc)) from exc
