"""What is under check: the model's unique params and buffers (with all their names), which of them
are expected frozen, and which are expected to train."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from torchscope._checkparts.report import Violation
from torchscope._loader import unwrap
from torchscope._patterns import match_names, no_match_message
from torchscope.errors import PatternError, TorchscopeError

__all__ = [
    "CheckedTensor",
    "Plan",
    "collect_tensors",
    "is_norm_with_stats",
    "local_tensor",
    "make_plan",
    "module_frozen",
    "module_type",
    "select_names",
    "unwrap",
]


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """The local shard of a DTensor (FSDP2), the tensor itself otherwise."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


@dataclass
class CheckedTensor:
    """One unique tensor of the model, all the names it goes by, and (buffers) the module holding it."""

    names: list[str]
    tensor: torch.Tensor
    module_name: str = ""
    module: nn.Module | None = None

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass
class Plan:
    """Every unique param and buffer, and which are expected frozen or trainable."""

    params: list[CheckedTensor]
    buffers: list[CheckedTensor]
    frozen: list[CheckedTensor]
    trainable: list[CheckedTensor]
    frozen_buffers: list[CheckedTensor]
    pattern_frozen: bool
    pre: list[Violation] = field(default_factory=list)


def _subclass_names(cls: type) -> set[str]:
    names = {cls.__name__}
    subs: list[type] = cls.__subclasses__()
    for sub in subs:
        names |= _subclass_names(sub)
    return names


def module_type(module: nn.Module | None) -> str:
    """The class name of a module; a TorchScript module's original one (``BatchNorm2d``)."""
    name = getattr(module, "original_name", None) if isinstance(module, torch.jit.ScriptModule) else None
    return name if isinstance(name, str) else type(module).__name__


def is_norm_with_stats(module: nn.Module | None) -> bool:
    """A norm layer that keeps running statistics (they move in train mode), scripted ones too."""
    if isinstance(module, torch.jit.ScriptModule):
        if module_type(module) not in _subclass_names(_NormBase):
            return False
    elif not isinstance(module, _NormBase):
        return False
    return bool(getattr(module, "track_running_stats", False))


def collect_tensors(model: nn.Module) -> tuple[list[CheckedTensor], list[CheckedTensor]]:
    """The unique params and buffers of ``model``, matched by identity, with every name of each."""
    params: dict[int, CheckedTensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in params:
            params[id(p)].names.append(name)
        else:
            params[id(p)] = CheckedTensor([name], p)
    buffers: dict[int, CheckedTensor] = {}
    for mname, module in model.named_modules(remove_duplicate=False):
        for bname, b in module._buffers.items():
            if b is None:
                continue
            qual = f"{mname}.{bname}" if mname else bname
            if id(b) in buffers:
                buffers[id(b)].names.append(qual)
            else:
                buffers[id(b)] = CheckedTensor([qual], b, mname, module)
    return list(params.values()), list(buffers.values())


def module_frozen(model: nn.Module, only: Sequence[str] | None = None) -> dict[str, bool]:
    """Module name -> whether it counts as frozen: its own params are all frozen; a module without
    params of its own follows its nearest ancestor that has any params."""
    modules = dict(model.named_modules(remove_duplicate=False))
    out: dict[str, bool] = {}
    for mname in modules if only is None else dict.fromkeys(only):
        prefix = mname
        while True:
            module = modules[prefix]
            own = list(module.parameters(recurse=False))
            subtree = own if own or prefix == mname else list(module.parameters())
            if subtree:
                out[mname] = not any(p.requires_grad for p in subtree)
                break
            if not prefix:
                out[mname] = False
                break
            prefix = prefix.rpartition(".")[0]
    return out


def select_names(names: Sequence[str], patterns: Sequence[str]) -> set[str]:
    """``match_names`` for many patterns: plain names (no glob characters) are looked up by prefix
    in a dict, so a list of thousands of exact names costs linear, not quadratic, time."""
    by_prefix: dict[str, list[str]] = {}
    for n in names:
        parts = n.split(".")
        for i in range(1, len(parts) + 1):
            by_prefix.setdefault(".".join(parts[:i]), []).append(n)
    selected: set[str] = set()
    globs = []
    for p in patterns:
        if any(c in p for c in "*?["):
            globs.append(p)
        elif p in by_prefix:
            selected.update(by_prefix[p])
        else:
            raise PatternError(no_match_message(p, list(names), what="parameter or buffer"))
    if globs:
        selected.update(match_names(names, globs, what="parameter or buffer"))
    return selected


def _split(frozen: str | Sequence[str]) -> list[str]:
    items = [frozen] if isinstance(frozen, str) else list(frozen)
    return [p.strip() for item in items for p in item.split(",") if p.strip()]


def make_plan(model: nn.Module, frozen: str | Sequence[str] | None) -> Plan:
    """What to check: ``frozen`` patterns choose the frozen tensors, None means ``requires_grad=False``
    params and the buffers of frozen modules."""
    params, buffers = collect_tensors(model)
    pre: list[Violation] = []
    if frozen is None:
        frozen_params = [t for t in params if not t.tensor.requires_grad]
        mod_frozen = module_frozen(model, [b.module_name for b in buffers])
        frozen_buffers = [b for b in buffers if mod_frozen.get(b.module_name, False)]
    else:
        patterns = _split(frozen)
        if not patterns:
            raise TorchscopeError(f"frozen={frozen!r} holds no pattern; pass e.g. frozen=['backbone.*'] or None")
        all_names = [n for t in params for n in t.names] + [n for b in buffers for n in b.names]
        selected = select_names(all_names, patterns)
        frozen_params = [t for t in params if any(n in selected for n in t.names)]
        frozen_buffers = [b for b in buffers if any(n in selected for n in b.names)]
        for t in frozen_params:
            inside = [n for n in t.names if n in selected]
            outside = [n for n in t.names if n not in selected]
            if outside:
                pre.append(_tied_violation(t, inside, outside))
    frozen_ids = {id(t.tensor) for t in frozen_params}
    trainable = [t for t in params if t.tensor.requires_grad and id(t.tensor) not in frozen_ids]
    return Plan(params, buffers, frozen_params, trainable, frozen_buffers, frozen is not None, pre)


def _tied_violation(t: CheckedTensor, frozen_names: list[str], other_names: list[str]) -> Violation:
    a, b = frozen_names[0], other_names[0]
    if t.tensor.requires_grad:
        cause = (
            f"'{b}' is the same tensor as '{a}': it is expected frozen as '{a}' but trainable as '{b}' "
            f"(requires_grad=True), so training '{b}' changes '{a}'; untie them (give '{b}' its own copy) "
            f"or freeze both names"
        )
    else:
        cause = (
            f"'{b}' is the same tensor as '{a}': freezing '{a}' also froze '{b}', which is expected to "
            f"train; untie them (give '{b}' its own copy) or expect both frozen"
        )
    return Violation("tied_conflict", b, None, cause)
