"""Collect a summary: one forward pass under the MAC counter with a hook on every module.

Each aten op is attributed to every module call on the stack, so a row's MACs include its children,
and ops with real arithmetic but no formula are listed per row (the row's count is then a lower
bound) instead of silently counting zero. The model is left as found (:func:`preserved`); the other
train/eval mode is run as well to tell when the two return different types.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from torchscope._flops import MacCounter, OpKind
from torchscope._inputs import describe_structure, prepare_call
from torchscope._recursion import with_headroom
from torchscope._state import preserved, set_training
from torchscope._summary.branches import branches_on_training
from torchscope._summary.calls import CallTracker
from torchscope._summary.data import DisplayOptions, ModuleRow, Summary, TensorSpec, own_weights, specs
from torchscope._summary.device import Runner, needs_move, runner, target_device
from torchscope._summary.graph import GraphTracker, is_exported_graph, program_module
from torchscope._summary.sizes import leaf_output_bytes, storage_bytes
from torchscope._typenames import type_name
from torchscope._wrappers import unwrap
from torchscope.errors import ForwardError, SpecError, TorchscopeError

Mode = Literal["eval", "train"]


class SummaryForwardError(ForwardError):
    """A forward pass failed during :func:`summary`: no numbers, only where it stopped."""


def _module_params(model: nn.Module, modules: list[nn.Module] | None = None) -> dict[int, tuple[int, int]]:
    """(params, trainable params) of every module, its children's included, each tensor once.

    ``modules``: ``model``'s modules in pre-order with repeats (named_modules(remove_duplicate=False)).
    When no module and no parameter occurs twice, a module's counts are its own plus its
    children's, summed bottom-up; otherwise each module's set of tensors is built.
    """
    return _params_and_totals(model, modules)[0]


def _params_and_totals(
    model: nn.Module, modules: list[nn.Module] | None = None
) -> tuple[dict[int, tuple[int, int]], tuple[int, int, int]]:
    """:func:`_module_params`, and the model's (params, trainable, bytes), each tensor once.

    One walk over ``modules`` serves both: the totals are those of ``model.parameters()``."""
    if modules is not None:
        tree = _tree_params(modules)
        if tree is not None:
            return tree
    sizes = {}
    owned: dict[int, dict[int, nn.Parameter]] = {}

    def visit(module: nn.Module) -> dict[int, nn.Parameter]:
        # bottom-up, one pass: a module's parameters are its own and its children's
        if id(module) in owned:
            return owned[id(module)]
        params = {id(p): p for p in module._parameters.values() if p is not None}
        for child in module._modules.values():
            if child is not None:
                params.update(visit(child))
        owned[id(module)] = params
        sizes[id(module)] = (
            sum(p.numel() for p in params.values()),
            sum(p.numel() for p in params.values() if p.requires_grad),
        )
        return params

    visit(model)
    unique = list({id(p): p for p in model.parameters()}.values())
    return sizes, (
        sum(p.numel() for p in unique),
        sum(p.numel() for p in unique if p.requires_grad),
        sum(p.numel() * p.element_size() for p in unique),
    )


def _tree_params(modules: list[nn.Module]) -> tuple[dict[int, tuple[int, int]], tuple[int, int, int]] | None:
    # None when a module or a parameter is shared: the plain sums would count it twice
    own: list[tuple[int, int]] = []
    seen: set[int] = set()
    n_params = 0
    all_total = all_trainable = all_bytes = 0
    for m in modules:
        total = trainable = 0
        for p in m._parameters.values():
            if p is not None:
                n_params += 1
                k = p.numel()
                total += k
                if p.requires_grad:
                    trainable += k
                if id(p) not in seen:
                    seen.add(id(p))
                    all_total += k
                    all_bytes += k * p.element_size()
                    if p.requires_grad:
                        all_trainable += k
        own.append((total, trainable))
    if n_params != len(seen) or len({id(m) for m in modules}) != len(modules):
        return None
    sizes: dict[int, tuple[int, int]] = {}
    for m, (total, trainable) in zip(reversed(modules), reversed(own), strict=True):  # children first
        for child in m._modules.values():
            if child is not None:
                if id(child) not in sizes:
                    return None  # a module added during the forward pass: not in the list
                ct, cg = sizes[id(child)]
                total += ct
                trainable += cg
        sizes[id(m)] = (total, trainable)
    return sizes, (all_total, all_trainable, all_bytes)


def _has_lazy(modules: Iterable[nn.Module]) -> bool:
    lazy = nn.parameter.UninitializedTensorMixin  # type: ignore[attr-defined]  # isinstance is slow here
    for m in modules:
        for t in m._parameters.values():
            if t is not None and issubclass(type(t), lazy):
                return True
        for b in m._buffers.values():
            if b is not None and issubclass(type(b), lazy):
                return True
    return False


_CLASS_ATTR: dict[tuple[type, str], bool] = {}
_GETATTR = nn.Module.__getattr__


def _attr(module: nn.Module, name: str) -> Any:
    # getattr(module, name, None) without nn.Module.__getattr__ raising for the modules that lack it
    attrs = module.__dict__
    if name in attrs:
        return attrs[name]
    cls = type(module)
    special = _CLASS_ATTR.get((cls, name))
    if special is None:
        special = _CLASS_ATTR[(cls, name)] = hasattr(cls, name) or cls.__getattr__ is not _GETATTR
    if (
        special
        or name in attrs.get("_parameters", ())
        or name in attrs.get("_buffers", ())
        or name in attrs.get("_modules", ())
    ):
        return getattr(module, name, None)
    return None


def _layout(module: nn.Module) -> tuple[tuple[int, ...] | None, int | None]:
    # kernel_size and groups for torchinfo's columns of the same names
    k = _attr(module, "kernel_size")
    kernel = (k,) if isinstance(k, int) else tuple(int(d) for d in k) if isinstance(k, tuple) else None
    g = _attr(module, "groups")
    return kernel, g if isinstance(g, int) else None


def _row_type(module: nn.Module) -> str:
    # a TorchScript module shows the class it was scripted from, as in the tree
    return type_name(module) if isinstance(module, torch.jit.ScriptModule) else type(module).__name__


_TRAIN = nn.Module.train


def _set_mode(model: nn.Module, train: bool, modules: list[nn.Module] | None = None) -> None:
    """``model.train(train)``; ``modules``: every module of ``model`` when the caller has them.

    model.train() sets the flag on every module through nn.Module.__setattr__ (slow): it is
    skipped when every flag is already right, and when no module overrides train() or
    __setattr__ the flags are set directly (preserved() puts the user's flags back either way)."""
    mods = list(model.modules()) if modules is None else modules
    if all(m.training is train for m in mods):
        return
    if all(type(m).train is _TRAIN for m in mods):
        for m in mods:
            set_training(m, train)
    else:
        model.train(train)


def inspected(model: Any) -> tuple[Any, list[str]]:
    """The module a summary describes, and notes on what was looked through: a ``torch.export``
    program's module (its graph names the module calls), a ``torch.compile``d model's original
    module (``_orig_mod``: Dynamo is not run), the module inside DataParallel/DDP."""
    notes: list[str] = []
    model = program_module(model)  # the graph's note is added where the graph runs
    if isinstance(model, nn.Module):
        model, wrappers = unwrap(model)
        if wrappers:
            notes.append(f"looked through {', '.join(wrappers)}: the rows are the wrapped model's")
    return model, notes


def check_model(model: Any, device: torch.device | str | None) -> None:
    """The model is an nn.Module, and ``device`` (when given) one this machine has; torchscope never
    moves the model (see :mod:`torchscope._summary.device`)."""
    if not isinstance(model, nn.Module):
        raise SpecError(f"summary() needs an nn.Module, got {type(model).__name__}")
    target_device(device)


@with_headroom
def parameter_summary(model: nn.Module, display: DisplayOptions | None = None) -> Summary:
    """The parameter table without a forward pass (no input given): no shapes, no mult-adds."""
    model, _ = inspected(model)
    check_model(model, None)
    params, (total, trainable, param_bytes) = _params_and_totals(model)
    rows = []
    for name, module in model.named_modules():
        p, tp = params[id(module)]
        kernel, groups = _layout(module)
        depth = name.count(".") + 1 if name else 0
        rows.append(
            ModuleRow(
                name, _row_type(module), depth, 0, (), (), p, tp, None, (), True, kernel, groups,
                weights=own_weights(module),
            )
        )  # fmt: skip
    return Summary(
        model=_row_type(model),
        mode="train" if model.training else "eval",
        inputs=(),
        outputs=(),
        output_type="(no forward pass)",
        rows=tuple(rows),
        total_params=total,
        trainable_params=trainable,
        param_bytes=param_bytes,
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
    # the collector allocates many small objects (hook handles, specs, rows); a full garbage
    # collection in the middle of a model's forward pass costs more than the rest of a meta run
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _collect(model, input_size, input_data, dtype, mode, device, compare_modes, kwargs, display)
    finally:
        if enabled:
            gc.enable()


@with_headroom  # room for our hooks on a deep model; one line if it is too deep for torch
def _collect(
    model: nn.Module,
    input_size: Any,
    input_data: Any,
    dtype: Any,
    mode: Mode,
    device: torch.device | str | None,
    compare_modes: bool,
    kwargs: dict[str, Any] | None,
    display: DisplayOptions | None,
) -> Summary:
    if mode not in ("eval", "train"):
        raise SpecError(f"mode={mode!r} must be 'eval' or 'train'")
    model, notes = inspected(model)
    check_model(model, device)
    target = model
    named = list(model.named_modules(remove_duplicate=False))  # one traversal, shared
    if _has_lazy(m for _, m in named):
        # a forward pass would materialise the lazy parameters: run it on a copy
        target = copy.deepcopy(model)
        notes.append("lazy modules were initialised on a copy of the model")
        named = list(target.named_modules(remove_duplicate=False))
    dev = target_device(device)
    if target is not model and needs_move(target, dev):
        target.to(dev)  # our copy of a lazy model
    graph = is_exported_graph(target)
    if graph and needs_move(target, dev):
        raise SpecError(f"device={str(dev)!r} but the exported program is elsewhere; export it on {str(dev)!r}")
    call = runner(target, dev)
    if needs_move(target, dev):
        notes.append(f"ran on {dev} with the parameters and buffers put there for the run; the model was not moved")
    if graph:
        notes.append("torch.export graph: each module call's shapes and mult-adds are read from the graph")
        compare_modes = False  # the graph runs as it was exported, in either mode
    with preserved(target, named_modules=named), torch.no_grad():
        args, kw = prepare_call(target, input_size, input_data, dtype=dtype, device=device, kwargs=kwargs)
        inputs = specs(args, "input") + specs(kw, "input")
        input_bytes = storage_bytes(args, kw)
        tracker = GraphTracker(target, named) if graph else CallTracker(target, named)  # type: ignore[arg-type]
        counter = MacCounter(tracker.on_op)
        all_modules = [m for _, m in named]
        _set_mode(target, mode == "train", all_modules)
        tracker.expect(args, kw)
        with tracker:
            try:
                with counter:
                    if isinstance(tracker, GraphTracker):
                        output = tracker.run(args, kw)
                    else:
                        output = call(args, kw)
            except TorchscopeError:
                raise  # a one-line diagnosis already (an input dtype the first layer cannot take)
            except Exception as exc:
                raise SummaryForwardError(tracker.failure_message(exc)) from exc
        other_mode: str | None = None
        other_type: str | None = None
        other_outputs: tuple[TensorSpec, ...] = ()
        if compare_modes and branches_on_training(target, tracker.modules.values()):
            other_mode = "train" if mode == "eval" else "eval"
            try:
                other = _other_mode_output(target, args, kw, other_mode == "train", call)
                other_type, other_outputs = describe_structure(other), specs(other, "output")
            except Exception as exc:
                first = (str(exc).splitlines() or [""])[0]
                notes.append(f"{other_mode}-mode forward failed: {type(exc).__name__}: {first}")
    return _build_summary(
        target, tracker, counter, mode, inputs, output, other_mode, other_type, other_outputs, notes, display,
        all_modules, input_bytes,
    )  # fmt: skip


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to("meta")
    if isinstance(value, dict):
        return {k: _to_meta(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_to_meta(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    return value


def _other_mode_output(
    model: nn.Module, args: tuple[Any, ...], kw: dict[str, Any], train: bool, call: Runner
) -> Any:
    """The output of the other train/eval mode: only its structure is used, so it runs on the meta
    device (copies of the tensors' metadata, nothing computed); data-dependent code falls back to a
    real forward pass."""
    _set_mode(model, train)
    state: dict[str, torch.Tensor] = dict(model.named_parameters())
    state.update(model.named_buffers())
    if all(t.is_meta for t in state.values()):
        with MacCounter(count=False):
            return call(args, kw)
    try:
        meta_state = {name: t.to("meta") for name, t in state.items()}
        with MacCounter(count=False):
            return torch.func.functional_call(
                model, meta_state, _to_meta(args), _to_meta(kw), tie_weights=True
            )
    except Exception:
        return call(args, kw)


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
    all_modules: list[nn.Module] | None = None,
    input_bytes: int = 0,
) -> Summary:
    # totals from the model's own parameters, each tied tensor once: a scripted child's
    # parameters count although no hook saw its layers
    params, (total, trainable, param_bytes) = _params_and_totals(model, all_modules)
    modules = tracker.modules
    named = [(tracker.names[key], m) for key, m in modules.items()]
    layouts: dict[int, tuple[tuple[int, ...] | None, int | None, tuple[TensorSpec, ...]]] = {}
    rows = []
    for c in tracker.calls:
        p, tp = params.get(c.module_id, (0, 0))
        layout = layouts.get(c.module_id)
        if layout is None:
            module = modules.get(c.module_id)
            layout = layouts[c.module_id] = (
                (*_layout(module), own_weights(module)) if module is not None else (None, None, ())
            )
        rows.append(
            ModuleRow(
                c.name, c.type, c.depth, c.call, c.inputs, c.outputs, p, tp,
                None if c.opaque else c.flops // 2, tuple(c.uncounted), c.completed, layout[0], layout[1],
                opaque=c.opaque, weights=layout[2],
            )
        )  # fmt: skip
    called = {c.module_id for c in tracker.calls}
    # nn.MultiheadAttention uses its out_proj's weights functionally, without calling it: that
    # child is not an unused branch.
    used_functionally = {
        id(m.out_proj) for _, m in named if isinstance(m, nn.MultiheadAttention) and id(m) in called
    }
    not_called = tuple(
        name
        for name, m in named
        if id(m) not in called
        and id(m) not in used_functionally
        and name
        and not isinstance(m, nn.ModuleDict | nn.ModuleList)
    )
    missing = counter.missing
    scripted = [tracker.names[key] or "the model" for key in tracker.scripted if key in called]
    if scripted:
        notes.append(
            f"TorchScript ({', '.join(scripted[:3])}{' ...' if len(scripted) > 3 else ''}): no Python hook runs "
            "inside a scripted module, so the shapes and mult-adds of its layers are unknown (?); "
            "its own row and the total count all of them"
        )
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
        model=tracker.model_type,
        mode=mode,
        inputs=inputs,
        outputs=outputs,
        output_type=output_type,
        rows=tuple(rows),
        total_params=total,
        trainable_params=trainable,
        param_bytes=param_bytes,
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
        input_bytes=input_bytes,
        total_output_bytes=leaf_output_bytes(tracker.calls, modules, params),
        display=display,
    )


__all__ = ["Mode", "OpKind", "SummaryForwardError", "check_model", "collect_summary", "parameter_summary"]
