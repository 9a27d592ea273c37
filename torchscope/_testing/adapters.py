"""The Hugging Face / PEFT assertions: ``assert_adapters_only_trainable``, ``assert_base_unchanged``
and ``assert_merge_equivalent``. peft is never imported here: the model is read (see
:mod:`torchscope._peft`), and only ``merge_and_unload()`` of a deep copy is called."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from torchscope._adapters.layers import adapter_parts, is_peft_model
from torchscope._check.step import check_step
from torchscope._format import format_shape
from torchscope._peft.merge import MergeReport, low_precision, merge_check
from torchscope._peft.review import head_cause
from torchscope._testing.messages import (
    finish,
    fmt,
    format_table,
    group_rows,
    literal_call,
    message,
    plural,
    shape_of,
    split_cause,
    violation_message,
)
from torchscope.errors import TorchscopeError

__all__ = ["assert_adapters_only_trainable", "assert_base_unchanged", "assert_merge_equivalent"]

_BASE_TRAINABLE = (
    "a base param requires grad, so training changes the base model, not just the adapter (get_peft_model "
    "froze it, and something unfroze it: model.requires_grad_(True), or get_input_embeddings().requires_grad_(True) "
    "to get grads through gradient checkpointing)"
)
_BASE_FIX = (
    "freeze it again (p.requires_grad_(False)); for checkpointing call model.enable_input_require_grads() "
    "instead; to train a module on purpose, put it in LoraConfig(modules_to_save=[...])"
)
_ADAPTER_FROZEN = (
    "a param of the active adapter does not require grad, so it never trains (a saved adapter loads frozen: "
    "PeftModel.from_pretrained(..., is_trainable=False) is the default)"
)
_ADAPTER_FIX = (
    "load it with PeftModel.from_pretrained(base, path, is_trainable=True), or p.requires_grad_(True)"
)
_BASE_KINDS = ("frozen_param_changed", "frozen_buffer_changed", "tied_conflict")


def _peft_or_raise(model: nn.Module, check: str) -> None:
    if not isinstance(model, nn.Module) or not is_peft_model(model):
        raise TorchscopeError(
            f"{check} needs a PEFT model (one with peft_config), not {type(model).__name__}; "
            "pass the model get_peft_model() returned"
        )


def _active(model: nn.Module) -> list[str]:
    active = getattr(model, "active_adapters", None)
    if isinstance(active, str):
        return [active]
    return [str(a) for a in active] if isinstance(active, list | tuple) and active else ["default"]


def assert_adapters_only_trainable(model: nn.Module) -> None:
    """Fail unless exactly the adapter trains: no base param requires grad (beyond the biases
    ``bias="all"``/``"lora_only"`` asks for), every param of the active adapter does, and a task head
    the fine-tune adds (``classifier``, ``score``) is in ``modules_to_save``.

    Args:
        model: A PEFT model.

    Raises:
        AssertionError: A base param trains, an adapter param does not, or a new head is not saved.
        TorchscopeError: ``model`` is not a PEFT model.

    >>> import torch, peft
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> lora = peft.get_peft_model(net, peft.LoraConfig(r=2, target_modules=["0"]))
    >>> assert_adapters_only_trainable(lora)
    """
    __tracebackhide__ = True
    _peft_or_raise(model, "assert_adapters_only_trainable")
    parts = adapter_parts(model)
    active = _active(model)
    rows: list[dict[str, Any]] = []
    for name, p in parts.base.items():
        if p.requires_grad and name not in parts.bias_trainable:
            rows.append(
                {
                    "kind": "base_trainable",
                    "name": name,
                    "shape": shape_of(p),
                    "max_abs_change": None,
                    "cause": _BASE_TRAINABLE,
                    "fix": _BASE_FIX,
                }
            )
    for name, p in parts.adapter.items():
        if not p.requires_grad and any(f".{a}." in f".{name}." for a in active):
            rows.append(
                {
                    "kind": "adapter_frozen",
                    "name": name,
                    "shape": shape_of(p),
                    "max_abs_change": None,
                    "cause": _ADAPTER_FROZEN,
                    "fix": _ADAPTER_FIX,
                }
            )
    for head in parts.heads:
        names = [n for n in parts.base if n.startswith(head + ".")]
        if (
            names
            and not any(n.startswith(head + ".") for n in parts.adapter)
            and not any(parts.base[n].requires_grad for n in names)
        ):
            cause, fix = split_cause(head_cause(model, head))
            rows += [
                {
                    "kind": "head_not_trained",
                    "name": n,
                    "shape": shape_of(parts.base[n]),
                    "max_abs_change": None,
                    "cause": cause,
                    "fix": fix,
                }
                for n in names
            ]
    groups = group_rows(rows)
    trainable = sum(p.requires_grad for p in model.parameters())
    report = {
        "ok": not rows,
        "adapter_params": len(parts.adapter),
        "base_params": len(parts.base),
        "trainable_params": trainable,
        "active_adapters": active,
        "violations": rows,
        "groups": [g.to_dict() for g in groups],
    }
    text = None
    if rows:
        title = (
            f"{plural(len(rows), 'param')} {'breaks' if len(rows) == 1 else 'break'} 'only the adapter trains' "
            f"({len(parts.adapter)} adapter and {len(parts.base)} base params checked)"
        )
        text = violation_message("assert_adapters_only_trainable", title, rows, groups)
    finish("assert_adapters_only_trainable", text, report)


def assert_base_unchanged(model: nn.Module, step: Callable[[], Any], *, optimizer: Any = None) -> None:
    """Run ``step()`` (one training step) under :func:`torchscope.check_step` and fail if any param or
    buffer of the base model changed; the adapter may change. Pass ``optimizer`` for a precise cause.

    Args:
        model: A PEFT model.
        step: Runs one training step; called once.
        optimizer: The step's optimizer, for a precise cause.

    Raises:
        AssertionError: A param or buffer of the base model changed.
        TorchscopeError: ``model`` is not a PEFT model, or has no base param or buffer.

    >>> import torch, peft
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> lora = peft.get_peft_model(net, peft.LoraConfig(r=2, target_modules=["0", "2"]))
    >>> opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    >>> def step():
    ...     opt.zero_grad(); lora(torch.randn(8, 4)).square().mean().backward(); opt.step()
    >>> assert_base_unchanged(lora, step, optimizer=opt)
    """
    __tracebackhide__ = True
    _peft_or_raise(model, "assert_base_unchanged")
    parts = adapter_parts(model)
    base_ids = {id(p) for p in parts.base.values()}
    adapter_ids = {id(p) for p in parts.adapter.values()}
    names = [n for n, p in model.named_parameters(remove_duplicate=False) if id(p) in base_ids]
    names += [
        n
        for n, b in model.named_buffers(remove_duplicate=False)
        if b is not None and id(b) not in adapter_ids
    ]
    if not names:
        raise TorchscopeError("the model has no base param or buffer, so there is nothing to hold unchanged")
    report = check_step(model, step, optimizer=optimizer, frozen=list(dict.fromkeys(names)))
    found = [v for v in report.violations if v.kind in _BASE_KINDS]
    shapes = {
        n: shape_of(t)
        for n, t in [
            *model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False),
        ]
    }
    calls = {(g.kind, n): g.fix for g in report.groups if g.fix for n in g.names}
    rows = []
    for v in found:
        cause, fix = split_cause(v.cause)
        call = calls.get((v.kind, v.name))
        rows.append(
            {
                "kind": v.kind,
                "name": v.name,
                "shape": shapes.get(v.name, "-"),
                "max_abs_change": v.max_abs_change,
                "cause": cause,
                "fix": fix,
                "call": None if call is None else literal_call(call),
            }
        )
    groups = group_rows(rows)
    data = report.to_dict()
    data.update(ok=not rows, violations=[v.to_dict() for v in found], groups=[g.to_dict() for g in groups])
    checked = report.frozen_params + report.frozen_buffers
    title = f"{len(rows)} of {plural(checked, 'base tensor')} changed in the step"
    finish(
        "assert_base_unchanged",
        violation_message("assert_base_unchanged", title, rows, groups) if rows else None,
        data,
    )


def _merge_text(report: MergeReport) -> str:
    check = "assert_merge_equivalent"
    if report.dropout:
        rows = [[n] for n in report.dropout]
        lora = sum(".lora_dropout." in f"{n}." for n in report.dropout)
        count = plural(len(report.dropout), "dropout module")
        of_lora = f" ({lora} of them lora_dropout)" if lora else ""
        return message(
            check,
            f"the model is in train mode, so {count}{of_lora} are live and every forward is random: "
            "nothing was compared",
            format_table(["live dropout module"], rows),
            ["call model.eval() before evaluating or comparing (training leaves the model in train mode)"],
        )
    bad = [o for o in report.outputs if o.max_abs_diff > report.atol]
    table = format_table(
        ["output", "shape", "max |Δ|"],
        [[o.name, format_shape(o.shape), fmt(o.max_abs_diff)] for o in report.outputs],
    )
    worst = sorted(report.layers, key=lambda x: -x.max_abs_error)[:5]
    if worst:
        table += "\n\n" + format_table(
            ["merged layer", "dtype", "max |W' - (W + s·B·A)|"],
            [[x.layer, x.dtype, fmt(x.max_abs_error)] for x in worst],
        )
    half = low_precision(report)
    where = f" (largest weight error {fmt(worst[0].max_abs_error)} in {worst[0].layer})" if worst else ""
    if half:
        cause = (
            f"the base weights are {'/'.join(half)}: merge_and_unload() writes W + scaling·B·A back in that "
            f"dtype, rounding the adapter's small update to that dtype's resolution{where}"
        )
        fix = (
            "merge a float32 copy (model.float(), then merge_and_unload(), then cast) or compare with the atol "
            "your dtype allows"
        )
    elif worst and worst[0].max_abs_error > report.atol:
        cause = f"the merged weights are not W + scaling·B·A{where}: the merge itself is wrong"
        fix = "check fan_in_fan_out, a changed lora_alpha/scaling, or a quantized base layer"
    else:
        cause = (
            "the LoRA weights merged exactly, so the difference comes from the forward: an adapter peft's "
            "merge leaves out (a non-Linear layer, DoRA, a hook), or nondeterminism in the model"
        )
        fix = "compare the adapter model with itself on the same inputs to rule out nondeterminism"
    title = (
        f"the merged model's output differs from the adapter model's by up to {fmt(report.max_abs_diff or 0.0)} "
        f"(atol={fmt(report.atol)}) in {plural(len(bad), 'output')}"
    )
    return f"{check}: {title}\n\n{table}\n\ncause: {cause}\nfix: {fix}"


def assert_merge_equivalent(peft_model: nn.Module, inputs: Any, *, atol: float = 1e-5) -> None:
    """Fail unless ``peft_model.merge_and_unload()`` computes what ``peft_model`` computes on ``inputs``,
    within ``atol`` on every float output. The merge runs on a deep copy: your model is not touched.

    ``inputs``: a dict is keyword arguments (``model(**inputs)``, a transformers batch), a tuple
    positional arguments, anything else the one argument. A model in train mode fails (its live
    dropout makes every forward random); call ``model.eval()`` first.

    Args:
        peft_model: A PEFT model in eval mode.
        inputs: A dict (keyword arguments), a tuple (positional) or one argument.
        atol: Allowed absolute difference on every float output.

    Raises:
        AssertionError: The merged model computes something else, or the model is in train mode.
        TorchscopeError: ``peft_model`` is not a PEFT model.

    >>> import torch, peft
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> lora = peft.get_peft_model(net, peft.LoraConfig(r=2, target_modules=["0"], init_lora_weights=False))
    >>> assert_merge_equivalent(lora.eval(), torch.randn(3, 4), atol=1e-5)
    """
    __tracebackhide__ = True
    _peft_or_raise(peft_model, "assert_merge_equivalent")
    report = merge_check(peft_model, inputs, atol=atol)
    finish("assert_merge_equivalent", None if report.ok else _merge_text(report), report.to_dict())
