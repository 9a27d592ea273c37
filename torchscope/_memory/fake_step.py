"""Run a step under fake tensors and the storage tracker: the raw timeline the report is built from.

:func:`trace_step` swaps the model's parameters and buffers for fake ones (restored afterwards), runs
the step ``config.steps`` times under :class:`~torchscope._memory.storage.StorageTracker`, and returns a
:class:`Trace`: every allocation with its birth, death, kind, phase and module. Nothing is allocated:
fake tensors carry shapes, dtypes and strides only, so any model size can be traced.

Hooks only observe: which module is running (global forward hooks), which tensors autograd saves
(``saved_tensors_hooks``), which storage becomes a ``.grad`` (post-accumulate-grad hooks), and the
optimizer's state (optimizer step hooks). All of them are removed, and the model's own parameters,
buffers and train/eval flags restored, when the trace ends or fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from torchscope._memory.diagnose import fake_limit, fake_limit_error, model_error
from torchscope._memory.step import (
    Batch,
    StepConfig,
    grad_checkpointing,
    make_batch,
    make_optimizer,
    training_step,
)
from torchscope._memory.storage import Allocation, StorageTracker, allocator_rounding
from torchscope._summary.calls import CallTracker
from torchscope.errors import ForwardError, TorchscopeError

UserStep = Callable[[nn.Module, list[torch.Tensor], "torch.optim.Optimizer | None"], Any]
OptimizerArg = str | Callable[[list[nn.Parameter]], torch.optim.Optimizer]
_MODULE_KEY = "torchscope.memory.module"


@dataclass
class Trace:
    """What one traced run saw (internal; the report is built from it).

    ``window`` is set when the second step was not run but derived (see :func:`trace_step`): the
    tracker clocks of the first step's forward and backward, whose live bytes plus the optimizer
    state alive at the end are the second step's.
    """

    allocations: list[Allocation]
    clocks: int
    step_peaks: tuple[int, ...]  # the first tracker clock of each step after the first
    window: tuple[int, int] | None = None

    def evaluate(self, sizes: list[int] | None = None) -> tuple[int, int, bool]:
        """(peak bytes, clock of the peak, whether the peak is the derived second step's).

        ``sizes`` replaces each allocation's bytes (the fit search's interpolation); by default
        the traced ones.
        """
        allocs = self.allocations
        nbytes = sizes if sizes is not None else [a.nbytes for a in allocs]
        delta = [0] * (self.clocks + 1)
        state = 0
        for a, n in zip(allocs, nbytes, strict=True):
            delta[a.born] += n
            if 0 <= a.died < self.clocks:  # a death after the trace (the fake weights) is no death
                delta[a.died] -= n
            elif a.kind == "optimizer state":
                state += n
        live, best, clock = 0, -1, 0
        series = []
        for i, d in enumerate(delta):
            live += d
            series.append(live)
            if live > best:
                best, clock = live, i
        if self.window is not None:
            first, last = self.window
            part = series[first:last]
            if part and max(part) + state > best:
                top = max(part)
                return top + state, first + part.index(top), True
        return best, clock, False

    def carried(self) -> list[Allocation]:
        """The optimizer state the derived second step carries through its forward and backward."""
        return [a for a in self.allocations if a.kind == "optimizer state" and not 0 <= a.died < self.clocks]

    def live_at(self, clock: int, derived: bool) -> list[Allocation]:
        alive = [a for a in self.allocations if a.live_at(clock)]
        return alive + self.carried() if derived else alive

    def step_of(self, clock: int, derived: bool) -> int:
        """1-based step of a clock."""
        if derived:
            return 2
        return 1 + sum(1 for start in self.step_peaks if clock >= start)


class _Context:
    """The module running now, kept by global forward hooks (a stack: modules nest)."""

    def __init__(self, model: nn.Module, tracker: StorageTracker) -> None:
        self.names = {id(m): name for name, m in model.named_modules(remove_duplicate=False) if name}
        self.root = type(model).__name__
        self.unit = unit_namer(model)
        self.stack: list[str] = []
        self.tracker = tracker

    def innermost(self) -> str:
        return self.stack[-1] if self.stack else self.root

    def pre(self, module: nn.Module, args: Any) -> None:
        name = self.names.get(id(module))
        if name is not None:
            self.stack.append(name)
            self.tracker.module = self.unit(name)

    def post(self, module: nn.Module, args: Any, output: Any) -> None:
        if id(module) in self.names and self.stack:
            self.stack.pop()
            self.tracker.module = self.unit(self.stack[-1]) if self.stack else "(outside)"


def reporting_units(model: nn.Module) -> list[str]:
    """The modules the breakdown is reported by: the top-level children, except that a wrapper child
    holding 90% or more of the parameters (a Hugging Face ``model``, a ``backbone``) is replaced by
    its own children, so ``model.layers`` and ``lm_head`` are told apart.

    >>> reporting_units(nn.Sequential(nn.Sequential(nn.Linear(9, 9), nn.ReLU()), nn.Linear(2, 1)))
    ['0.0', '0.1', '1']
    """
    children = list(model.named_children())
    total = sum(p.numel() for p in model.parameters())
    units: list[str] = []
    for name, child in children:
        grandchildren = list(child.named_children())
        if total and grandchildren and sum(p.numel() for p in child.parameters()) >= 0.9 * total:
            units += [f"{name}.{sub}" for sub, _ in grandchildren]
        else:
            units.append(name)
    return units or [type(model).__name__]


def unit_namer(model: nn.Module) -> Callable[[str], str]:
    """Qualified module or parameter name -> the reporting unit it belongs to."""
    units = reporting_units(model)
    nested = {u.split(".")[0] for u in units if "." in u}
    root = type(model).__name__

    def unit(name: str) -> str:
        parts = name.split(".")
        if parts[0] in nested:
            return ".".join(parts[:2]) if len(parts) > 1 else parts[0]
        return parts[0] if name else root

    return unit


def _owner_of(model: nn.Module) -> dict[int, str]:
    """id(parameter or buffer) -> the top-level module that owns it (first name wins for tied ones)."""
    owners: dict[int, str] = {}
    unit = unit_namer(model)
    for name, t in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        owners.setdefault(id(t), unit(name.rsplit(".", 1)[0]) if "." in name else type(model).__name__)
    return owners


def _fake_like(t: torch.Tensor, config: StepConfig, device: str) -> torch.Tensor:
    dtype = config.param_dtype if t.dtype.is_floating_point and config.dtype != "fp32" else t.dtype
    fmt = torch.channels_last if config.channels_last and t.dim() == 4 else torch.contiguous_format
    return torch.empty(t.shape, dtype=dtype, device=device).contiguous(memory_format=fmt)


@contextlib.contextmanager
def fake_weights(model: nn.Module, config: StepConfig, tracker: StorageTracker) -> Iterator[None]:
    """Replace every parameter and buffer with a fake one (same sharing), restore them afterwards.

    Must run inside the fake mode. The fakes get the step's dtype and memory format, as
    ``model.to(dtype)`` / ``model.to(memory_format=...)`` would give them.
    """
    owners = _owner_of(model)
    memo: dict[int, torch.Tensor] = {}
    saved: list[tuple[dict[str, Any], str, Any]] = []

    try:
        for module in model.modules():
            pairs: tuple[tuple[dict[str, Any], str], ...] = (
                (module._parameters, "parameters"),
                (module._buffers, "buffers"),
            )
            for slots, kind in pairs:
                for name, t in list(slots.items()):
                    if t is None:
                        continue
                    fake = memo.get(id(t))
                    if fake is None:
                        fake = _fake_like(t, config, tracker.device_type)
                        if kind == "parameters":
                            fake = nn.Parameter(fake, requires_grad=t.requires_grad)
                        memo[id(t)] = fake
                        tracker.claim(fake, kind, owners.get(id(t), ""))
                    saved.append((slots, name, t))
                    slots[name] = fake
        yield
    finally:
        for slots, name, t in reversed(saved):
            slots[name] = t


@contextlib.contextmanager
def _modes(model: nn.Module, train: bool) -> Iterator[None]:
    flags = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def build_optimizer(
    optimizer: OptimizerArg, config: StepConfig, params: list[nn.Parameter]
) -> torch.optim.Optimizer | None:
    if config.mode == "eval" or not params:
        return None
    if callable(optimizer):
        return optimizer(params)
    return make_optimizer(config, params)


@contextlib.contextmanager
def _observe(model: nn.Module, tracker: StorageTracker, ctx: _Context, host_steps: bool) -> Iterator[None]:
    """Every observing hook, removed on exit."""
    handles: list[Any] = [
        nn.modules.module.register_module_forward_pre_hook(ctx.pre),
        nn.modules.module.register_module_forward_hook(ctx.post, always_call=True),
    ]
    owners = _owner_of(model)

    def on_grad(p: torch.Tensor) -> None:
        if p.grad is not None:
            tracker.claim(p.grad, "gradients", owners.get(id(p), ""))

    def pre_step(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        tracker.phase = "optimizer"

    def post_step(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group in opt.param_groups:
            for p in group["params"]:
                for key, value in opt.state.get(p, {}).items():
                    if not isinstance(value, torch.Tensor):
                        continue
                    alloc = tracker.record(value, kind="optimizer state", owner=owners.get(id(p), ""))
                    if host_steps and key == "step" and value.dim() == 0 and alloc is not None:
                        alloc.nbytes = 0  # a step counter the target keeps on the host (not capturable)
        tracker.phase = "forward"

    def on_node(node: Any) -> None:
        node.metadata[_MODULE_KEY] = tracker.module

    def pack(t: torch.Tensor) -> torch.Tensor:
        tracker.claim(t, "activations")
        # Detached: the same storage, but no grad_fn. Packing the tensor itself would make a saved
        # output refer to its own node, a reference cycle that keeps an unused branch's graph (and
        # its activations) alive until the garbage collector runs, which autograd alone never does.
        return t.detach()

    for p in model.parameters():
        if p.requires_grad:
            handles.append(p.register_post_accumulate_grad_hook(on_grad))
    handles.append(register_optimizer_step_pre_hook(pre_step))
    handles.append(register_optimizer_step_post_hook(post_step))
    with contextlib.ExitStack() as stack:
        if hasattr(torch.autograd.graph, "node_creation_hook"):
            stack.enter_context(torch.autograd.graph.node_creation_hook(on_node))
        stack.enter_context(torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
        try:
            yield
        finally:
            for h in handles:
                h.remove()


class BackwardAwareTracker(StorageTracker):
    """The tracker, knowing the backward pass (autograd's graph task) and the node's module."""

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if torch._C._current_graph_task_id() != -1:
            outer = self.phase, self.module
            self.phase = "backward"
            node = torch._C._current_autograd_node()
            if node is not None:
                self.module = getattr(node, "metadata").get(_MODULE_KEY, "(backward)")  # noqa: B009
            try:
                return super().__torch_dispatch__(func, types, args, kwargs)
            finally:
                self.phase, self.module = outer
        return super().__torch_dispatch__(func, types, args, kwargs)


def trace_step(
    model: nn.Module,
    batch: Batch,
    config: StepConfig,
    *,
    step: UserStep | None = None,
    optimizer: OptimizerArg = "adamw",
) -> Trace:
    """Trace ``config.steps`` steps of ``model`` on fresh batches of ``batch``'s shapes.

    Without autocast the step runs on the meta device (torch's meta kernels, the fastest way to get
    shapes); autocast needs a device it knows, so ``--amp`` runs on fake CPU tensors instead.

    The built-in two-step training step is traced once plus one more optimizer step: the second
    step's forward and backward are the first step's ops on the same shapes (gradients are set to
    None in between, so both start from the same tensors) with the optimizer state alive throughout,
    so their live bytes are the first step's plus that state, exactly; the second optimizer step,
    where the state already exists, is traced for real on the first step's gradients. That halves the
    work. A user ``step`` is called ``config.steps`` times, with no such assumption.
    """
    device = "meta" if config.amp == "off" else "cpu"
    tracker = BackwardAwareTracker(device, allocator_rounding(config.device))
    ctx = _Context(model, tracker)
    tracker.where = ctx.innermost
    fake_mode: Any = (
        FakeTensorMode(allow_non_fake_inputs=True) if device == "cpu" else contextlib.nullcontext()
    )
    with fake_mode, fake_weights(model, config, tracker), _modes(model, config.mode == "train"):
        params = [p for p in model.parameters() if p.requires_grad]
        opt = build_optimizer(optimizer, config, params)
        run = training_step(config, opt)
        derive = step is None and opt is not None and config.steps == 2
        steps = 1 if config.mode == "eval" or derive else config.steps
        marks: list[int] = []  # the clock when the first step's optimizer step begins
        starts: list[int] = []
        with (
            grad_checkpointing(model, config.grad_checkpointing),
            _observe(model, tracker, ctx, host_steps=config.device == "cuda"),
            CallTracker(model) as calls,  # names the module and its input shapes if the model fails
        ):
            for i in range(steps):
                if i:
                    starts.append(tracker.clock)
                with tracker:
                    tracker.phase, tracker.module = "forward", "(outside)"
                    data = make_batch(batch, config, torch.device(device))
                    try:
                        if step is None:
                            run(model, data, on_optimizer=lambda: marks.append(tracker.clock))
                        else:
                            step(model, data, opt)
                        if derive and opt is not None:
                            starts.append(tracker.clock)
                            tracker.module = "(outside)"
                            opt.step()  # the second step's update, on the state the first one made
                    except TorchscopeError:
                        raise  # already one line: an output with no tensor, a missing switch
                    except Exception as exc:
                        raise _diagnosed(exc, tracker, ctx, calls) from None
                    del data
    window = (0, marks[0]) if derive and marks else None
    return Trace(tracker.allocations, tracker.clock, tuple(starts), window)


def _diagnosed(exc: Exception, tracker: StorageTracker, ctx: _Context, calls: CallTracker) -> ForwardError:
    """The one-line error of a failed trace: a limit of fake tensors, or the model's own failure."""
    failure = tracker.failure if tracker.failure is not None and tracker.failure.of(exc) else None
    op = failure.op if failure is not None else None
    func = getattr(exc, "func", None)  # fake tensors' exceptions name the op
    if func is not None:
        op = str(func)
    running = calls.stack[-1].name if calls.stack else None  # a forward that raised stays on the stack
    module = failure.module if failure is not None else (running or ctx.innermost())
    reason = fake_limit(exc)
    if reason is not None:
        return fake_limit_error(exc, op, module, reason)
    phase = failure.phase if failure is not None else tracker.phase
    return model_error(exc, calls, {"optimizer": "optimizer step"}.get(phase, phase), module, op)
