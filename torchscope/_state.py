"""Save and restore everything torchscope may touch on a user's model.

Habit 1 of the house: hooks, train/eval flags, ``requires_grad``, buffers, grads and RNG state are
changed only inside :func:`preserved`, which restores them in ``finally``.

:func:`capture_state` takes a full, comparable picture of a model; tests (ours and users') compare
two captures to prove that a torchscope call changed nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from operator import is_
from typing import Any

import torch
from torch import nn

from torchscope._result import Frozen, record

# Every per-module hook dict torch keeps. Looked up with getattr so older torch versions that lack
# one of them still work.
HOOK_DICTS: tuple[str, ...] = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


def _uninitialized(t: torch.Tensor | None) -> bool:
    # Lazy modules hold placeholders that cannot be detached or cloned until their first forward.
    return isinstance(t, (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer))


_HOOK_SET = frozenset(HOOK_DICTS)
_NO_HOOKS: dict[str, set[Any]] = {}


def _saved_hooks(m: nn.Module) -> dict[str, set[Any]]:
    # the keys of each hook dict that holds hooks: most are empty, and an absent one restores to empty
    attrs = m.__dict__  # torch keeps the hook dicts as instance attributes
    if _HOOK_SET <= attrs.keys() and not any(map(attrs.get, HOOK_DICTS)):
        return _NO_HOOKS  # the common case, checked without a Python loop
    return {d: set(h) for d in HOOK_DICTS if (h := attrs[d] if d in attrs else getattr(m, d, None))}


def _remove_new_hooks(m: nn.Module, keys: dict[str, set[Any]]) -> None:
    attrs = m.__dict__
    if not keys and _HOOK_SET <= attrs.keys() and not any(map(attrs.get, HOOK_DICTS)):
        return  # none then, none now
    for d in HOOK_DICTS:
        hook_dict = attrs[d] if d in attrs else getattr(m, d, None)
        if not hook_dict:
            continue
        before = keys.get(d, ())
        for k in [k for k in hook_dict if k not in before]:
            del hook_dict[k]


def _rebind(now: dict[str, Any], saved: dict[str, Any]) -> None:
    # put back the objects each name was bound to, when any binding changed
    if len(now) == len(saved) and all(map(is_, now, saved)) and all(map(is_, now.values(), saved.values())):
        return  # the same names, in the same order, bound to the same objects (checked in C)
    if now.keys() != saved.keys() or any(now[k] is not v for k, v in saved.items()):
        now.clear()
        now.update(saved)


_PLAIN_FLAG: dict[type, bool] = {}


def set_training(module: nn.Module, flag: bool) -> None:
    """``module.training = flag`` for this module only; where nn.Module's own ``__setattr__`` would
    just store it (no override, no ``training`` property, not TorchScript), stored directly (faster)."""
    cls = type(module)
    plain = _PLAIN_FLAG.get(cls)
    if plain is None:
        plain = _PLAIN_FLAG[cls] = (
            cls.__setattr__ is nn.Module.__setattr__
            and not issubclass(cls, torch.jit.ScriptModule)
            and not any("training" in vars(k) for k in cls.__mro__ if k is not nn.Module)
        )
    if plain:
        module.__dict__["training"] = flag
    else:
        module.training = flag


def _hook_keys(model: nn.Module) -> dict[str, dict[str, tuple[Any, ...]]]:
    out: dict[str, dict[str, tuple[Any, ...]]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        out[name] = {d: tuple(getattr(module, d, {}).keys()) for d in HOOK_DICTS}
    return out


def rng_state() -> dict[str, Any]:
    """The torch, Python, numpy (when installed) and initialised CUDA generators' states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # numpy is optional
        pass
    if torch.cuda.is_initialized() and torch.cuda.is_available():  # the cheap check first
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def preserved(
    model: nn.Module,
    *,
    params: bool = False,
    buffers: bool = True,
    grads: bool = True,
    modes: bool = True,
    requires_grad: bool = True,
    hooks: bool = True,
    rng: bool = True,
    structure: bool = True,
    named_modules: list[tuple[str, nn.Module]] | None = None,
) -> Iterator[nn.Module]:
    """Run a block that may change ``model``; put everything back afterwards, also on error.

    Restores train/eval flags, ``requires_grad``, buffer values (BatchNorm running stats), the
    ``.grad`` tensors (same objects, old values), hooks added to any module's hook dicts, and the
    torch/python/numpy/CUDA RNG state, and (``structure``) which Parameter, buffer and child module
    each name of every module is bound to: a block that replaces them is undone by re-binding the
    originals. ``params=True`` also restores parameter values.
    ``named_modules``: ``list(model.named_modules(remove_duplicate=False))`` when the caller has it.

    Args:
        model: The model to restore.
        params: Also restore parameter values.
        buffers: Restore buffer values.
        grads: Restore the ``.grad`` tensors.
        modes: Restore train/eval flags.
        requires_grad: Restore ``requires_grad`` flags.
        hooks: Remove hooks added during the block.
        rng: Restore the torch, Python, numpy and CUDA RNG state.
        structure: Re-bind the original Parameters, buffers and child modules.
        named_modules: ``list(model.named_modules(remove_duplicate=False))``, when the caller has it.

    Yields:
        The model itself.

    >>> import torch
    >>> m = torch.nn.BatchNorm1d(3)
    >>> with preserved(m):
    ...     _ = m.train()(torch.randn(4, 3))
    >>> int(m.num_batches_tracked)
    0
    """
    if named_modules is None:
        named_modules = list(model.named_modules(remove_duplicate=False))
    # each module once, in order (a shared module is restored once)
    unique_modules = list({id(m): m for _, m in named_modules}.values())
    mode_flags = [(m, m.training) for m in unique_modules] if modes else []
    # model.parameters() without walking the modules again: each tensor once
    unique_params = list(
        {id(p): p for m in unique_modules for p in m._parameters.values() if p is not None}.values()
    )
    rg_flags = [(p, p.requires_grad) for p in unique_params] if requires_grad else []
    grad_saved: list[tuple[nn.Parameter, torch.Tensor | None, torch.Tensor | None]] = []
    if grads:
        for p in unique_params:
            g = p.grad
            grad_saved.append((p, g, None if g is None else g.detach().clone()))
    buf_saved: list[tuple[nn.Module, str, torch.Tensor | None, torch.Tensor | None]] = []
    if buffers:
        for m in unique_modules:
            if not m._buffers:
                continue
            for bname, b in m._buffers.items():
                keep = b is None or b.is_meta or _uninitialized(b)
                buf_saved.append((m, bname, b, None if keep or b is None else b.detach().clone()))
    param_saved: list[tuple[nn.Parameter, torch.Tensor]] = []
    if params:
        param_saved = [(p, p.detach().clone()) for p in unique_params if not (p.is_meta or _uninitialized(p))]
    hook_saved = [(m, _saved_hooks(m)) for m in unique_modules] if hooks else []
    # which object each name is bound to: a block that assigns a new Parameter, buffer or child
    # module (resize_token_embeddings, a new head, adapter loading) is undone by re-binding the old
    structure_saved: list[tuple[nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    if structure:
        # a ScriptModule's dicts are read-only views of its C++ state: not re-bindable, not saved
        structure_saved = [
            (m, dict(m._parameters), dict(m._buffers), dict(m._modules))
            for m in unique_modules
            if isinstance(m._parameters, dict)
        ]
    rng_saved = rng_state() if rng else None
    try:
        yield model
    finally:
        for m, saved_params, saved_buffers, saved_modules in structure_saved:
            _rebind(m._parameters, saved_params)
            _rebind(m._buffers, saved_buffers)
            _rebind(m._modules, saved_modules)
        with torch.no_grad():
            for m, flag in mode_flags:
                if m.training is not flag:  # only the changed ones
                    set_training(m, flag)
            for p, flag in rg_flags:
                if p.requires_grad is not flag and not _uninitialized(p):
                    p.requires_grad_(flag)
            for m, bname, obj, value in buf_saved:
                m._buffers[bname] = obj
                if obj is not None and value is not None:
                    obj.copy_(value)
            for p, value in param_saved:
                p.copy_(value)
            for p, g, value in grad_saved:
                if g is not None and value is not None:
                    g.copy_(value)
                if p.grad is not g:
                    p.grad = g
        for m, keys in hook_saved:
            _remove_new_hooks(m, keys)
        if rng_saved is not None:
            set_rng_state(rng_saved)


@record  # no function compiled at import: summary() imports this module
class ModelState(Frozen):
    """A comparable picture of a model: values, flags, modes, hooks, devices, grads."""

    tensors: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor | None]
    requires_grad: dict[str, bool]
    training: dict[str, bool]
    hooks: dict[str, dict[str, tuple[Any, ...]]]
    devices: dict[str, str]

    def differences(self, other: ModelState) -> list[str]:
        """Human-readable list of what differs between two captures (empty when identical)."""
        out: list[str] = []
        for field in ("requires_grad", "training", "hooks", "devices"):
            a, b = getattr(self, field), getattr(other, field)
            if a != b:
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                out.append(f"{field} differs at {keys[:5]}")
        if set(self.tensors) != set(other.tensors):
            out.append(f"state_dict keys differ: {sorted(set(self.tensors) ^ set(other.tensors))[:5]}")
        for k in sorted(set(self.tensors) & set(other.tensors)):
            if not _same_tensor(self.tensors[k], other.tensors[k]):
                out.append(f"state_dict[{k!r}] changed")
        for k in sorted(set(self.grads) | set(other.grads)):
            a, b = self.grads.get(k), other.grads.get(k)
            if (a is None) != (b is None) or (a is not None and b is not None and not _same_tensor(a, b)):
                out.append(f"grad of {k!r} changed")
        return out


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.is_meta:
        return True
    return bool(torch.equal(a, b)) or bool(
        torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


def capture_state(model: nn.Module) -> ModelState:
    """Capture state_dict values, grads, flags, modes, hook keys and devices of ``model``.

    Args:
        model: The model to capture.

    Returns:
        A ``ModelState``; ``before.differences(capture_state(model))`` lists what changed since.

    >>> import torch
    >>> m = torch.nn.Linear(2, 2)
    >>> before = capture_state(m)
    >>> before.differences(capture_state(m))
    []
    """
    tensors = {
        k: (torch.empty(0, device="meta") if _uninitialized(v) else v.detach().clone())
        for k, v in model.state_dict(keep_vars=True).items()
    }
    named = dict(model.named_parameters(remove_duplicate=False))
    grads = {k: (None if p.grad is None else p.grad.detach().clone()) for k, p in named.items()}
    requires_grad = {k: p.requires_grad for k, p in named.items()}
    training = {k: m.training for k, m in model.named_modules(remove_duplicate=False)}
    devices = {k: str(v.device) for k, v in tensors.items()}
    return ModelState(tensors, grads, requires_grad, training, _hook_keys(model), devices)
