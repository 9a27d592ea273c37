"""What the model is: parameter counts, train/eval modes and output shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchscope._format import format_shape
from torchscope._patterns import match_names
from torchscope._state import preserved
from torchscope._testing.messages import finish, format_table, message
from torchscope._testing.tensors import call_model
from torchscope.errors import SpecError, TorchscopeError

__all__ = ["assert_eval_mode", "assert_output_shape", "assert_param_count", "assert_train_mode"]


def _count(model: nn.Module) -> tuple[int, int]:
    total = trainable = 0
    for p in {id(p): p for p in model.parameters()}.values():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise TorchscopeError("the model has uninitialised lazy parameters; run one forward pass first")
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def assert_param_count(model: nn.Module, total: int | None = None, trainable: int | None = None) -> None:
    """Fail unless the model has exactly ``total`` parameters and ``trainable`` trainable ones.

    Tied/shared parameters count once.

    Args:
        model: The model.
        total: Expected number of parameters.
        trainable: Expected number of trainable parameters.

    Raises:
        AssertionError: A count differs.
        TorchscopeError: Neither count given, or one is negative, or lazy params are uninitialised.

    >>> import torch
    >>> assert_param_count(torch.nn.Linear(4, 2), total=10, trainable=10)
    """
    __tracebackhide__ = True
    if total is None and trainable is None:
        raise TorchscopeError("assert_param_count needs total= or trainable=, e.g. total=11_689_512")
    for label, v in (("total", total), ("trainable", trainable)):
        if v is not None and (not isinstance(v, int) or v < 0):
            raise TorchscopeError(f"{label}={v!r} must be an int >= 0")
    n_total, n_trainable = _count(model)
    rows = []
    if total is not None and total != n_total:
        rows.append(["total", f"{total:,}", f"{n_total:,}", f"{n_total - total:+,}"])
    if trainable is not None and trainable != n_trainable:
        rows.append(["trainable", f"{trainable:,}", f"{n_trainable:,}", f"{n_trainable - trainable:+,}"])
    report = {"ok": not rows, "total": n_total, "trainable": n_trainable,
              "expected_total": total, "expected_trainable": trainable}
    text = None
    if rows:
        children = []
        for cname, child in model.named_children():
            c_total, c_train = _count(child)
            children.append([cname, f"{c_total:,}", f"{c_train:,}"])
        table = format_table(["count", "expected", "actual", "difference"], rows)
        if children:
            table += "\n\n" + format_table(["child", "params", "trainable"], children)
        text = message(
            "assert_param_count",
            "parameter count differs",
            table,
            ["check which modules are frozen (torchscope tree MODEL) and the head's size"],
        )
    finish("assert_param_count", text, report)


def _mode_message(check: str, bad: list[tuple[str, nn.Module]], want: str, fix: str) -> str:
    rows = [[name or "(root)", type(m).__name__, "train" if m.training else "eval", want] for name, m in bad]
    return message(
        check,
        f"{len(bad)} module{'s' if len(bad) != 1 else ''} in the wrong mode",
        format_table(["module", "type", "mode", "expected"], rows),
        [fix],
    )


def assert_eval_mode(model: nn.Module) -> None:
    """Fail if any module is in train mode (dropout and batch statistics active at inference).

    Args:
        model: The model.

    Raises:
        AssertionError: A module is in train mode.

    >>> import torch
    >>> assert_eval_mode(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout()).eval())
    """
    __tracebackhide__ = True
    bad = [(n, m) for n, m in model.named_modules() if m.training]
    text = _mode_message("assert_eval_mode", bad, "eval", "call model.eval() before inference") if bad else None
    finish("assert_eval_mode", text, {"ok": not bad, "train_mode": [n for n, _ in bad]})


def assert_train_mode(model: nn.Module, except_: Sequence[str] | str = ()) -> None:
    """Fail unless every module is in train mode, and the modules selected by ``except_`` in eval mode.

    ``except_`` names modules you keep in eval mode while training, such as a frozen backbone's
    BatchNorm layers.

    Args:
        model: The model.
        except_: Glob patterns of the modules that should be in eval mode.

    Raises:
        AssertionError: A module is in the wrong mode.

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
    >>> _ = m[1].eval()
    >>> assert_train_mode(m, except_=["1"])
    """
    __tracebackhide__ = True
    patterns = [except_] if isinstance(except_, str) else list(except_)
    modules = list(model.named_modules())
    in_eval = set(match_names([n for n, _ in modules if n], patterns, what="module")) if patterns else set()
    bad = [(n, m) for n, m in modules if m.training == (n in in_eval)]
    text = None
    if bad:
        fix = "call model.train()" + (f", then .eval() on the modules matching {patterns}" if patterns else "")
        rows = [[n or "(root)", type(m).__name__, "train" if m.training else "eval", "eval" if n in in_eval else "train"]
                for n, m in bad]
        text = message(
            "assert_train_mode",
            f"{len(bad)} module{'s' if len(bad) != 1 else ''} in the wrong mode",
            format_table(["module", "type", "mode", "expected"], rows),
            [fix],
        )
    finish("assert_train_mode", text, {"ok": not bad, "wrong_mode": [n for n, _ in bad]})


# ---------------------------------------------------------------------------------------------
# Output shapes


def _is_shape(spec: Any) -> bool:
    return isinstance(spec, torch.Size) or (
        isinstance(spec, (tuple, list))
        and not hasattr(spec, "_fields")
        and all((isinstance(s, int) and not isinstance(s, bool)) or s is None for s in spec)
    )


def _shape_str(shape: Sequence[int | None]) -> str:
    return format_shape(None if s == -1 else s for s in shape)


def _compare_output(path: str, out: Any, spec: Any, rows: list[list[str]]) -> None:
    if _is_shape(spec):
        if not isinstance(out, torch.Tensor):
            rows.append([path, _shape_str(list(spec)), type(out).__name__])
            return
        want = list(spec)
        ok = len(want) == out.dim() and all(w is None or w == -1 or w == s for w, s in zip(want, out.shape, strict=False))
        if not ok:
            rows.append([path, _shape_str(want), _shape_str(list(out.shape))])
        return
    if isinstance(spec, Mapping):
        if hasattr(out, "_fields"):
            got = out._asdict()
        elif isinstance(out, Mapping):
            got = dict(out)
        else:
            rows.append([path, "{" + ", ".join(map(str, spec)) + "}", type(out).__name__])
            return
        for key, sub in spec.items():
            sub_path = f"{path}.{key}" if hasattr(out, "_fields") else f"{path}[{key!r}]"
            if key not in got:
                rows.append([sub_path, _describe(sub), "missing"])
            else:
                _compare_output(sub_path, got[key], sub, rows)
        return
    if isinstance(spec, (tuple, list)):
        if not isinstance(out, (tuple, list)) or len(out) != len(spec):
            rows.append([path, f"{len(spec)} outputs", _describe_out(out)])
            return
        for i, (o, s) in enumerate(zip(out, spec, strict=True)):
            field = getattr(out, "_fields", None)
            _compare_output(f"{path}.{field[i]}" if field else f"{path}[{i}]", o, s, rows)
        return
    raise SpecError(f"shape_or_spec {spec!r} is not a shape, a tuple/list of specs or a dict of specs; e.g. (4, 10)")


def _describe(spec: Any) -> str:
    return _shape_str(list(spec)) if _is_shape(spec) else type(spec).__name__


def _describe_out(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return "tensor " + _shape_str(list(out.shape))
    if isinstance(out, (tuple, list)):
        return f"{len(out)} outputs"
    return type(out).__name__


def assert_output_shape(model: nn.Module, input: Any, shape_or_spec: Any) -> None:
    """Run ``model(input)`` (no grad, current mode, state restored) and check the output's shape.

    ``shape_or_spec``: a shape such as ``(4, 10)`` (``None`` or ``-1`` matches any size), a
    tuple/list of specs for tuple outputs, or a dict of specs for dict and namedtuple outputs.

    Args:
        model: The model.
        input: The one input of ``model(input)``.
        shape_or_spec: A shape, a tuple/list of specs, or a dict of specs.

    Raises:
        AssertionError: An output's shape (or structure) differs.
        SpecError: ``shape_or_spec`` is not a spec.

    >>> import torch
    >>> assert_output_shape(torch.nn.Linear(4, 2), torch.randn(3, 4), (None, 2))
    """
    __tracebackhide__ = True
    with preserved(model), torch.no_grad():
        out = call_model(model, input)
    rows: list[list[str]] = []
    _compare_output("out", out, shape_or_spec, rows)
    text = None
    if rows:
        text = message(
            "assert_output_shape",
            f"{len(rows)} output{'s' if len(rows) != 1 else ''} with an unexpected shape",
            format_table(["output", "expected", "actual"], rows),
            ["check the head's out_features and any flatten/view/permute before it"],
        )
    finish("assert_output_shape", text, {"ok": not rows, "mismatches": rows})
