"""Which module call is running: pre/post hooks on every module, and the message of a failed forward."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torchscope._inputs import InputDtypeCheck, dtype_hint
from torchscope._recursion import headroom
from torchscope._summary.data import TensorSpec, dtype_name, shapes_text, specs
from torchscope._typenames import type_name
from torchscope.errors import ForwardError, TorchscopeError


class Call:
    """One module call while it is recorded (mutable; the summary freezes it into a ModuleRow)."""

    __slots__ = (
        "call",
        "completed",
        "depth",
        "flops",
        "inputs",
        "module_id",
        "name",
        "opaque",
        "outputs",
        "type",
        "uncounted",
    )

    def __init__(
        self, name: str, type: str, depth: int, call: int, inputs: tuple[TensorSpec, ...], module_id: int
    ) -> None:
        self.name, self.type, self.depth, self.call = name, type, depth, call
        self.inputs, self.module_id = inputs, module_id
        self.outputs: tuple[TensorSpec, ...] = ()
        self.flops = 0
        self.uncounted: dict[str, None] = {}
        self.completed = False
        self.opaque = False  # inside a TorchScript module: no hook ran, shapes and MACs unknown


def _one_spec(memo: dict[Any, TensorSpec], name: str, t: torch.Tensor) -> TensorSpec:
    # specs are frozen: one object per (name, shape, dtype) seen in this pass, shared by the calls
    key = (name, t.shape, t.dtype)
    spec = memo.get(key)
    if spec is None:
        spec = memo[key] = TensorSpec(name, tuple(t.shape), dtype_name(t.dtype))
    return spec


class CallTracker:
    """Which module call is running: a stack of running calls and the list of all calls, in order.

    Used by :func:`summary` (MACs per call), :func:`~torchscope.grad_report` and
    :func:`run_forward` (to name the module a failing forward pass was in). The hooks are torch's
    global module hooks (two registrations, not two per module), filtered to this model's modules,
    and removed on exit, also on error. Keyword inputs are recorded when the call returns.
    """

    def __init__(self, model: nn.Module, named_modules: list[tuple[str, nn.Module]] | None = None) -> None:
        self.model = model
        self.names: dict[int, str] = {}
        self._types: dict[int, str] = {}
        self.modules: dict[int, nn.Module] = {}  # id -> module, each once, in named_modules order
        # a TorchScript module called from Python runs its hooks, the modules inside it do not:
        # they get rows without shapes or MACs (opaque), made when the scripted module is called
        self._inside: dict[int, list[tuple[str, str, int, int]]] = {}
        if named_modules is None:
            named_modules = list(model.named_modules(remove_duplicate=False))
        script = torch.jit.ScriptModule
        scripted: tuple[str, int] | None = None  # the outermost TorchScript module being walked
        for name, module in named_modules:
            if scripted is not None and not (scripted[0] == "" or name.startswith(scripted[0] + ".")):
                scripted = None
            key = id(module)
            if key not in self.names:
                self.names[key] = name
                self._types[key] = type_name(module) if isinstance(module, script) else type(module).__name__
                self.modules[key] = module
            if scripted is not None:
                outer = scripted[0]
                relative = name[len(outer) + 1 :] if outer else name
                self._inside[scripted[1]].append((name, self._types[key], relative.count(".") + 1, key))
            elif isinstance(module, script):
                scripted = (name, key)
                self._inside[key] = []
        self.calls: list[Call] = []
        self.stack: list[Call] = []
        self._count: dict[int, int] = {}
        self._handles: list[Any] = []
        self._specs: dict[Any, TensorSpec] = {}
        self._room: Any = None
        self._dtypes: InputDtypeCheck | None = None

    def expect(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The model's inputs, so that a layer given one it cannot take is one line naming it, on meta
        as on a real device (without this, the root call's positional inputs are used)."""
        self._dtypes = InputDtypeCheck(args, kwargs)

    @property
    def model_type(self) -> str:
        """The class the model's own row shows."""
        return self._types.get(id(self.model), type(self.model).__name__)

    @property
    def scripted(self) -> list[int]:
        """The outermost TorchScript modules with modules inside (whose rows are opaque), by id."""
        return [key for key, inside in self._inside.items() if inside]

    def __enter__(self) -> CallTracker:
        # with a hook registered, torch spends one more frame per nesting level: make room for it
        self._room = headroom(self.model)
        self._room.__enter__()
        try:
            self._handles.append(nn.modules.module.register_module_forward_pre_hook(self._pre))
            self._handles.append(nn.modules.module.register_module_forward_hook(self._post, with_kwargs=True))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        # torch forgets the with_kwargs flag of a removed global hook: left behind, it makes torch
        # think a global hook is set, and every later call of a torch.compile'd model warns so
        stale = getattr(nn.modules.module, "_global_forward_hooks_with_kwargs", {})
        for h in self._handles:
            h.remove()
            stale.pop(h.id, None)
        self._handles.clear()
        room, self._room = self._room, None
        if room is not None:
            room.__exit__(None, None, None)

    def _pre(self, module: nn.Module, args: Any) -> None:
        key = id(module)
        name = self.names.get(key)
        if name is None:
            return  # a module of another model, or one made during the forward pass
        if self._dtypes is None and module is self.model:
            self._dtypes = InputDtypeCheck(args, {})
        if args and self._dtypes is not None:
            self._dtypes(module, args[0], name)  # before the layer runs: meta kernels skip some checks
        n = self._count.get(key, 0)
        self._count[key] = n + 1
        if len(args) == 1 and isinstance(args[0], torch.Tensor):  # the common case, one tensor
            inputs: tuple[TensorSpec, ...] = (_one_spec(self._specs, "input[0]", args[0]),)
        else:
            inputs = specs(args, "input")
        call = Call(name, self._types[key], len(self.stack), n, inputs, key)
        self.calls.append(call)
        inside = self._inside.get(key)
        if inside:
            for inner_name, inner_type, depth, inner_key in inside:
                row = Call(inner_name, inner_type, call.depth + depth, n, (), inner_key)
                row.completed = row.opaque = True
                self.calls.append(row)
        self.stack.append(call)

    def _post(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        key = id(module)
        if key not in self.names:
            return
        # pop up to this module's own call: a module whose forward raised and was caught inside
        # its parent never reached its post hook
        stack = self.stack
        while stack:
            call = stack.pop()
            if call.module_id == key:
                if kwargs:
                    call.inputs = call.inputs + specs(kwargs, "input")
                if isinstance(output, torch.Tensor):
                    call.outputs = (_one_spec(self._specs, "output", output),)
                else:
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
        if isinstance(exc, TorchscopeError):  # our own one line (an input the layer cannot take)
            return str(exc)
        first = (str(exc).strip().splitlines() or [""])[0]
        if not self.stack:
            return f"forward pass failed before any module ran: {type(exc).__name__}: {first}"
        running = self.stack[-1]
        label = f"{_short(running.name)} ({running.type})" if running.name else f"the model ({running.type})"
        done = [_short(c.name) or c.type for c in self.calls if c.completed]
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
        wrong = dtype_hint(error, sorted(dtypes))
        if wrong:
            return wrong
        integer = {d for d in dtypes if d.startswith(("int", "uint", "bool"))}
        module = self.modules.get(running.module_id)
        floats = module is not None and any(p.is_floating_point() for p in module.parameters(recurse=False))
        if integer and dtypes == integer and floats:
            return (
                f"; the input is {', '.join(sorted(integer))} but the module's weights are floating point: "
                "give float inputs (--dtype float32)"
            )
        return ""


def _short(name: str) -> str:
    # a module 200 levels deep has a 400-character name: the message stays one readable line
    parts = name.split(".")
    return name if len(parts) <= 8 else f"{'.'.join(parts[:3])}...{'.'.join(parts[-3:])} ({len(parts)} deep)"


def run_forward(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``model(*args, **kwargs)``; a failure is a :class:`ForwardError` naming the module and its inputs."""
    with CallTracker(model) as tracker:
        try:
            return model(*args, **kwargs)
        except Exception as exc:
            raise ForwardError(tracker.failure_message(exc)) from exc
