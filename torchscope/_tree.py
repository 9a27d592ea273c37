"""``tree(model)``: the module hierarchy as plain data, without running the model.

Counts are by identity: a tensor tied under two names, or a child module registered twice, is
counted once. The model is only read, never changed: no forward pass, no hooks, no flag flips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from torchscope._adapters.layers import collect_adapters, logical_numel
from torchscope._recursion import WALK_PER_LEVEL, check_depth

# the plain data lives in a torch-free module (read back from the cache without torch); re-exported
# here so ``from torchscope._tree import ModuleTree`` keeps working
from torchscope._treedata import (
    FREEZE_STATES,
    HookCounts,
    ModuleEntry,
    ModuleTree,
    TreeWarning,
)
from torchscope._typenames import type_name
from torchscope._wrappers import unwrap

__all__ = [
    "FREEZE_STATES", "HookCounts", "ModuleEntry", "ModuleTree", "TreeWarning", "tree", "type_name",
]  # fmt: skip

_LAZY = (UninitializedParameter, UninitializedBuffer)


def _numel(t: torch.Tensor) -> int:
    # lazy modules have no shape until their first forward pass
    if isinstance(t, _LAZY):
        return 0
    # packed 4-bit weights count as the weights they stand for
    return logical_numel(t)


def _hook_counts(module: nn.Module) -> HookCounts:
    def n(*attrs: str) -> int:
        return sum(len(getattr(module, a, None) or {}) for a in attrs)

    return HookCounts(
        forward=n("_forward_hooks"),
        forward_pre=n("_forward_pre_hooks"),
        backward=n("_backward_hooks", "_backward_pre_hooks"),
        state_dict=n("_state_dict_hooks", "_state_dict_pre_hooks"),
        load_state_dict=n("_load_state_dict_pre_hooks", "_load_state_dict_post_hooks"),
        # Tensor.register_hook and register_post_accumulate_grad_hook on the module's own parameters
        tensor=sum(
            len(getattr(p, "_backward_hooks", None) or {}) + len(getattr(p, "_post_accumulate_grad_hooks", None) or {})
            for p in module._parameters.values()
            if p is not None
        ),
    )


def _freeze_state(trainable: int, frozen: int, has_params: bool) -> str:
    if trainable and frozen:
        return "partial"
    if trainable:
        return "trainable"
    if frozen or has_params:
        return "frozen"
    return "none"


def _bytes_by_dtype(tensors: Iterable[torch.Tensor]) -> tuple[tuple[str, int], ...]:
    out: dict[str, int] = {}
    for t in tensors:
        if isinstance(t, _LAZY):
            continue
        key = str(t.dtype).removeprefix("torch.")
        out[key] = out.get(key, 0) + t.numel() * t.element_size()  # bytes held: packed weights as stored
    return tuple(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def _extra_repr(module: nn.Module) -> str:
    try:
        text = module.extra_repr()
    except Exception:  # a user's extra_repr may fail on meta tensors; the tree does not need it
        return ""
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."


def tree(model: nn.Module) -> ModuleTree:
    """Collect the module hierarchy of ``model`` with unique parameter counts, modes, hooks and warnings.

    No forward pass runs and nothing on the model changes. Wrappers (``torch.compile``,
    DataParallel/DDP) are looked through and named in ``wrappers``.

    Args:
        model: The model; nothing on it changes and no forward pass runs.

    Returns:
        The ``ModuleTree``: one row per module, unique parameter counts, modes, hooks and warnings.

    Raises:
        TorchscopeError: ``model`` is not an ``nn.Module``.

    >>> from torch import nn
    >>> t = tree(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    >>> t.total_params, [(m.name, m.type, m.params) for m in t.modules]
    (9, [('', 'Sequential', 9), ('0', 'Linear', 9), ('1', 'ReLU', 0)])
    """
    if not isinstance(model, nn.Module):
        from torchscope.errors import TorchscopeError

        raise TorchscopeError(
            f"tree() takes an nn.Module, got {type(model).__name__}; load one with load_model()"
        )
    root, wrappers = unwrap(model)
    check_depth(root, per_level=WALK_PER_LEVEL)  # one line, not a RecursionError, if too deep

    # every name a module or parameter is reachable under, first name first
    names_of_module: dict[int, list[str]] = {}
    for name, module in root.named_modules(remove_duplicate=False):
        names_of_module.setdefault(id(module), []).append(name)
    names_of_param: dict[int, list[str]] = {}
    params_by_id: dict[int, torch.Tensor] = {}
    for name, p in root.named_parameters(remove_duplicate=False):
        names_of_param.setdefault(id(p), []).append(name)
        params_by_id[id(p)] = p
    buffers_by_id: dict[int, torch.Tensor] = {id(b): b for b in root.buffers()}

    # per module: the ids of every parameter and buffer under it; cached by identity so a shared
    # child is walked once and still counted in each parent
    under: dict[int, tuple[frozenset[int], frozenset[int], str]] = {}

    def walk(module: nn.Module) -> tuple[frozenset[int], frozenset[int], str]:
        cached = under.get(id(module))
        if cached is not None:
            return cached
        params = {id(p) for p in module._parameters.values() if p is not None}
        buffers = {id(b) for b in module._buffers.values() if b is not None}
        own = tuple(
            (n, tuple(p.shape) if _numel(p) else (), str(p.dtype), p.requires_grad)
            for n, p in module._parameters.items()
            if p is not None
        )
        own_buf = tuple(
            (n, tuple(b.shape), str(b.dtype)) for n, b in module._buffers.items() if b is not None
        )
        child_sigs = []
        for child_name, child in module._modules.items():
            if child is None:
                continue
            cp, cb, csig = walk(child)
            params |= cp
            buffers |= cb
            child_sigs.append((child_name, csig))
        key = repr(
            (type(module).__qualname__, _extra_repr(module), module.training, own, own_buf, child_sigs)
        )
        signature = hashlib.sha1(key.encode()).hexdigest()[:12]
        result = (frozenset(params), frozenset(buffers), signature)
        under[id(module)] = result
        return result

    walk(root)
    recorded = _exported_types(root)


    entries: list[ModuleEntry] = []
    warnings: list[TreeWarning] = []
    model_training = root.training
    for name, module in root.named_modules():
        pids, bids, signature = under[id(module)]
        trainable = sum(_numel(params_by_id[i]) for i in pids if params_by_id[i].requires_grad)
        frozen = sum(_numel(params_by_id[i]) for i in pids if not params_by_id[i].requires_grad)
        own_params = [p for p in module._parameters.values() if p is not None]
        depth = 0 if not name else name.count(".") + 1
        entries.append(
            ModuleEntry(
                name=name,
                type=recorded.get(name) or type_name(module),
                depth=depth,
                params=trainable + frozen,
                own_params=sum(_numel(p) for p in own_params),
                trainable_params=trainable,
                frozen_params=frozen,
                buffers=sum(_numel(buffers_by_id[i]) for i in bids),
                training=module.training,
                freeze=_freeze_state(trainable, frozen, bool(pids)),
                hooks=_hook_counts(module),
                aliases=tuple(names_of_module[id(module)][1:]),
                extra=_extra_repr(module),
                signature=signature,
            )
        )
        warnings.extend(_module_warnings(name, module, own_params, model_training, root))

    unique_params = list(params_by_id.values())
    unique_buffers = list(buffers_by_id.values())
    total_trainable = sum(_numel(p) for p in unique_params if p.requires_grad)
    total_frozen = sum(_numel(p) for p in unique_params if not p.requires_grad)
    distinct_modules = {id(m): m for m in root.modules()}.values()
    global_hooks = _global_hook_count()
    return ModuleTree(
        model_type=recorded.get("") or type_name(root),
        wrappers=wrappers,
        total_params=total_trainable + total_frozen,
        trainable_params=total_trainable,
        frozen_params=total_frozen,
        total_buffers=sum(_numel(b) for b in unique_buffers),
        param_bytes=_bytes_by_dtype(unique_params),
        buffer_bytes=_bytes_by_dtype(unique_buffers),
        devices=tuple(sorted({str(t.device) for t in [*unique_params, *unique_buffers]})),
        modules_in_train_mode=sum(1 for m in distinct_modules if m.training),
        modules_in_eval_mode=sum(1 for m in distinct_modules if not m.training),
        tied=tuple(tuple(names) for names in names_of_param.values() if len(names) > 1),
        global_hooks=global_hooks,
        modules=tuple(entries),
        warnings=tuple(warnings),
        adapters=collect_adapters(root, _numel),
    )


def _exported_types(root: nn.Module) -> dict[str, str]:
    """Module path -> the class it was before ``torch.export`` (which turns every submodule of its
    program into a plain ``Module``), read from the graph's ``nn_module_stack``; empty for any other
    model. Checked by name: importing torch.fx to check the type is slow."""
    graph = getattr(root, "graph", None) if type(root).__name__ == "GraphModule" else None
    out: dict[str, str] = {}
    for node in getattr(graph, "nodes", ()):
        for path, kind in (node.meta.get("nn_module_stack") or {}).values():
            if path not in out:  # '' is the model's own class
                name = kind.__name__ if isinstance(kind, type) else str(kind)
                out[path] = name.rsplit(".", 1)[-1]  # 'torch.nn.modules.conv.Conv2d' -> 'Conv2d'
    return out


def _parent(root: nn.Module, name: str) -> nn.Module:
    parent_name = name.rpartition(".")[0]
    return root.get_submodule(parent_name) if parent_name else root


def _module_warnings(
    name: str, module: nn.Module, own_params: list[torch.Tensor], model_training: bool, root: nn.Module
) -> list[TreeWarning]:
    out: list[TreeWarning] = []
    shown = name or "(root)"
    if (
        isinstance(module, _NormBase)
        and module.track_running_stats
        and module.training
        and own_params
        and not any(p.requires_grad for p in own_params)
    ):
        out.append(
            TreeWarning(
                "norm_stats_drift",
                name,
                f"{shown} ({type(module).__name__}) has frozen params but is in train mode: its running "
                "stats still change; call .eval() on it to freeze them too",
            )
        )
    # A frozen norm layer held in eval inside a training model is the fix for drifting running
    # stats (FrozenBatchNorm's behaviour), not a mistake to warn about.
    frozen_norm = (
        isinstance(module, _NormBase) and bool(own_params) and not any(p.requires_grad for p in own_params)
    )
    if model_training and name and not module.training and not frozen_norm and _parent(root, name).training:
        out.append(
            TreeWarning(
                "eval_in_train",
                name,
                f"{shown} ({type(module).__name__}) is in eval mode inside a model in train mode",
            )
        )
    if any(isinstance(p, _LAZY) for p in own_params):
        out.append(
            TreeWarning(
                "lazy_params",
                name,
                f"{shown} ({type(module).__name__}) has uninitialized lazy parameters, counted as 0 until "
                "its first forward pass",
            )
        )
    return out


def _global_hook_count() -> int:
    """Hooks registered for every module (``register_module_forward_hook`` and friends)."""
    from torch.nn.modules import module as module_mod

    names = (
        "_global_forward_hooks",
        "_global_forward_pre_hooks",
        "_global_backward_hooks",
        "_global_backward_pre_hooks",
        "_global_module_registration_hooks",
        "_global_parameter_registration_hooks",
        "_global_buffer_registration_hooks",
    )
    return sum(len(getattr(module_mod, n, None) or {}) for n in names)
