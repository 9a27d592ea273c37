"""Recipe checks from Andrej Karpathy's "A Recipe for Training Neural Networks": batch
independence, the loss at init, and overfitting one batch."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from torchscope._state import preserved
from torchscope._testing.messages import finish, fmt, format_table, message
from torchscope._testing.tensors import call_model
from torchscope.errors import SpecError, TorchscopeError

__all__ = ["assert_batch_independent", "assert_loss_at_init", "assert_overfits_one_batch"]


def _float_leaves(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x] if x.is_floating_point() else []
    if isinstance(x, Mapping):
        return [t for v in x.values() for t in _float_leaves(v)]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _float_leaves(v)]
    return []


def _with_grad_leaves(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(True) if x.is_floating_point() else x
    if isinstance(x, Mapping):
        return {k: _with_grad_leaves(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_with_grad_leaves(v) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(_with_grad_leaves(v) for v in x)
    return x


def _output_leaves(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in _output_leaves(v)]
    if isinstance(out, (tuple, list)):
        return [t for v in out for t in _output_leaves(v)]
    return []


def _ranges(idx: list[int]) -> str:
    parts: list[str] = []
    start = prev = None
    for i in [*idx, None]:  # type: ignore[list-item]
        if start is not None and (i is None or i != prev + 1):  # type: ignore[operator]
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def assert_batch_independent(model: nn.Module, x: Any, *, rtol: float = 1e-6, max_samples: int = 16) -> None:
    """Fail if output sample i depends on input sample j ≠ i (a reshape mixing the batch, BatchNorm in train mode).

    Backpropagates a random projection of each sample's outputs to the inputs, in the model's
    current mode; sample j leaks into i when max |∂out_i/∂x_j| > rtol · max |∂out_i/∂x_i|.
    Values, grads, buffers, modes and RNG are restored.

    Args:
        model: The model, in the mode to test.
        x: A batch of at least 2 samples (floating point).
        rtol: Leak threshold, relative to a sample's own gradient.
        max_samples: Samples of the batch to check.

    Raises:
        AssertionError: An output sample depends on another input sample.
        SpecError: ``x`` has no float tensor or a batch below 2, or the outputs have no batch dimension.

    >>> import torch
    >>> assert_batch_independent(torch.nn.Linear(3, 2), torch.randn(4, 3))
    """
    __tracebackhide__ = True
    leaves = _float_leaves(x)
    if not leaves:
        raise SpecError("x has no floating-point tensor to differentiate; pass float inputs (e.g. embedded tokens)")
    batch = leaves[0].shape[0] if leaves[0].dim() else 0
    if batch < 2:
        raise SpecError(f"x has batch size {batch}; assert_batch_independent needs a batch of at least 2")
    n = min(batch, max_samples)
    with preserved(model):
        xg = _with_grad_leaves(x)
        inputs = [t for t in _float_leaves(xg) if t.dim() and t.shape[0] == batch]
        out = call_model(model, xg)
        outs = [o for o in _output_leaves(out) if o.dim() and o.shape[0] == batch and o.requires_grad]
        if not outs:
            raise SpecError("the model's outputs have no differentiable tensor with the batch dimension first")
        gen = torch.Generator(device="cpu").manual_seed(0)
        weights = [torch.randn(o.shape[1:], generator=gen).to(o.device, o.dtype) for o in outs]
        dep_rows = []
        for i in range(n):
            proj = torch.stack([(o[i] * w).sum() for o, w in zip(outs, weights, strict=True)]).sum()
            grads = torch.autograd.grad(proj, inputs, retain_graph=True, allow_unused=True)
            per_sample = torch.zeros(batch, device=inputs[0].device, dtype=torch.float64)
            for g in grads:
                if g is not None:
                    per_sample = torch.maximum(per_sample, g.detach().abs().reshape(batch, -1).amax(1).double().to(per_sample.device))
            dep_rows.append(per_sample)
        dep = torch.stack(dep_rows).cpu().tolist()  # one host sync
    if not any(v for row in dep for v in row):
        raise SpecError(
            "every gradient of the outputs with respect to x is zero (a zero-initialised head?), so batch "
            "independence cannot be seen; run the check with a non-zero head, or on the backbone"
        )
    leaks = []
    for i, row in enumerate(dep):
        own = row[i]
        others = [j for j, v in enumerate(row) if j != i and (v > rtol * own if own > 0 else v > 0)]
        if others:
            leaks.append({"sample": i, "depends_on": others, "max_cross_grad": max(row[j] for j in others),
                          "own_grad": own})
    norm_train = [(name, type(m).__name__) for name, m in model.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    report = {"ok": not leaks, "samples_checked": n, "leaks": leaks}
    text = None
    if leaks:
        rows = [[str(v["sample"]), _ranges(v["depends_on"]), fmt(v["max_cross_grad"]), fmt(v["own_grad"])]
                for v in leaks]
        fixes = []
        if norm_train:
            name, kind = norm_train[0]
            more = f" (and {len(norm_train) - 1} more)" if len(norm_train) > 1 else ""
            fixes.append(f"{kind} {name!r}{more} is in train mode and mixes the batch: run this check after "
                         "model.eval(), or use GroupNorm/LayerNorm")
        fixes.append("look for view/reshape/transpose calls that move the batch dimension (dim 0)")
        text = message(
            "assert_batch_independent",
            f"{len(leaks)} of {n} output samples depend on other input samples",
            format_table(["output sample", "depends on input samples", "max |∂out_i/∂x_j|", "max |∂out_i/∂x_i|"],
                         rows),
            fixes,
        )
    finish("assert_batch_independent", text, report)


def _first_tensor(out: Any) -> torch.Tensor:
    leaves = _output_leaves(out)
    if not leaves:
        raise SpecError(f"the model returned {type(out).__name__}; pass loss_fn=(output, y) -> loss")
    return leaves[0]


def assert_loss_at_init(
    model: nn.Module,
    x: Any,
    y: torch.Tensor,
    num_classes: int,
    rtol: float = 0.1,
    *,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """Fail unless the loss at init is within ``rtol`` of −log(1/C) = log(C) (cross-entropy).

    ``loss_fn(output, y)`` defaults to cross-entropy on the first output tensor. Runs without
    grad in the current mode; state restored.

    Args:
        model: The freshly initialised model.
        x: A batch of inputs.
        y: The class labels.
        num_classes: Number of classes C (at least 2).
        rtol: Allowed relative distance from log(C).
        loss_fn: ``loss_fn(output, y)``; default cross-entropy on the first output tensor.

    Raises:
        AssertionError: The loss is not within ``rtol`` of log(C).
        SpecError: A bad ``num_classes`` or ``rtol``, or an output with no tensor.

    >>> import torch
    >>> m = torch.nn.Linear(8, 5)
    >>> torch.nn.init.zeros_(m.weight)
    Parameter containing:...
    >>> assert_loss_at_init(m, torch.randn(16, 8), torch.randint(0, 5, (16,)), num_classes=5)
    """
    __tracebackhide__ = True
    if not isinstance(num_classes, int) or num_classes < 2:
        raise SpecError(f"num_classes={num_classes!r} must be an int >= 2")
    if rtol <= 0:
        raise SpecError(f"rtol={rtol!r} must be > 0, e.g. rtol=0.1")
    expected = math.log(num_classes)
    with preserved(model), torch.no_grad():
        out = call_model(model, x)
        logits = _first_tensor(out)
        if loss_fn is None:
            loss_t = torch.nn.functional.cross_entropy(logits.float(), y)
        else:
            loss_t = loss_fn(out, y)
        stats = torch.stack([loss_t.detach().float().reshape(()), logits.detach().float().std()]).tolist()
    loss, logit_std = float(stats[0]), float(stats[1])
    rel = abs(loss - expected) / expected
    ok = rel <= rtol
    report = {"ok": ok, "loss": loss, "expected": expected, "relative_error": rel, "logit_std": logit_std}
    text = None
    if not ok:
        rows = [[fmt(loss), fmt(expected), f"{rel:.1%}", f"{rtol:.1%}", fmt(logit_std)]]
        fix = (
            "initialise the last layer small (e.g. nn.init.zeros_(head.weight); set its bias to the log class prior)"
            if loss > expected
            else "the loss is below chance at init: check for label leakage into the input, or the loss's reduction"
        )
        text = message(
            "assert_loss_at_init",
            f"loss at init {fmt(loss)} is not near -log(1/{num_classes}) = {fmt(expected)}",
            format_table(["loss", "expected", "relative error", "rtol", "logit std"], rows),
            [fix],
        )
    finish("assert_loss_at_init", text, report)


def assert_overfits_one_batch(
    model: nn.Module,
    batch: tuple[Any, Any],
    steps: int = 100,
    target_loss: float = 0.05,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    lr: float = 1e-2,
    optimizer_factory: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
) -> None:
    """Fail unless ``steps`` optimizer steps on one ``(x, y)`` batch drive the loss below ``target_loss``.

    Trains the trainable parameters with Adam(lr) (or ``optimizer_factory(params)``) in the
    model's current mode, then restores values, grads, buffers, modes and RNG.

    Args:
        model: The model; its state is restored afterwards.
        batch: One ``(x, y)`` pair.
        steps: Optimizer steps to run.
        target_loss: The loss to get below.
        loss_fn: ``loss_fn(output, y)``; default cross-entropy.
        lr: Adam's learning rate.
        optimizer_factory: Builds the optimizer from the trainable params instead of Adam.

    Raises:
        AssertionError: The loss stayed at or above ``target_loss``.
        SpecError: ``steps`` < 1 or ``batch`` not a pair.
        TorchscopeError: The model has no trainable parameter.

    >>> import torch
    >>> m = torch.nn.Linear(4, 3)
    >>> assert_overfits_one_batch(m, (torch.randn(4, 4), torch.tensor([0, 1, 2, 0])), steps=200, lr=0.1)
    """
    __tracebackhide__ = True
    if not isinstance(steps, int) or steps < 1:
        raise SpecError(f"steps={steps!r} must be an int >= 1")
    try:
        x, y = batch
    except (TypeError, ValueError):
        raise SpecError("batch must be a pair (x, y)") from None
    params = [p for p in {id(p): p for p in model.parameters()}.values() if p.requires_grad]
    if not params:
        raise TorchscopeError("the model has no trainable parameter; unfreeze some before this check")
    history: list[torch.Tensor] = []
    no_path = False
    with preserved(model, params=True):
        opt = optimizer_factory(params) if optimizer_factory else torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            out = call_model(model, x)
            loss = loss_fn(out, y) if loss_fn else torch.nn.functional.cross_entropy(_first_tensor(out), y)
            history.append(loss.detach().float().reshape(()))
            if not bool(torch.isfinite(history[-1])):
                break
            if not loss.requires_grad:
                no_path = True
                break
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = call_model(model, x)
            final_t = loss_fn(out, y) if loss_fn else torch.nn.functional.cross_entropy(_first_tensor(out), y)
        history.append(final_t.detach().float().reshape(()))
        curve = torch.stack(history).cpu().tolist()
    final = float(curve[-1])
    ok = math.isfinite(final) and final <= target_loss
    report = {"ok": ok, "initial_loss": curve[0], "final_loss": final, "min_loss": min(curve),
              "steps": len(curve) - 1, "target_loss": target_loss}
    text = None
    if not ok:
        marks = sorted({0, *(round(k * (len(curve) - 1) / 4) for k in range(1, 5))})
        rows = [[str(k), fmt(float(curve[k]))] for k in marks]
        if no_path:
            fix = "the loss does not depend on any trainable parameter: unfreeze the layers you mean to train"
        elif not math.isfinite(final):
            fix = "the loss became non-finite: lower lr, check the loss for log(0)"
        elif final >= curve[0]:
            fix = "the loss did not decrease: check the optimizer sees the parameters, the labels, and the lr"
        else:
            fix = "the loss decreases too slowly: raise steps or lr; check capacity and that nothing is frozen"
        text = message(
            "assert_overfits_one_batch",
            f"loss {fmt(final)} after {len(curve) - 1} steps on one batch, target {fmt(target_loss)}",
            format_table(["step", "loss"], rows),
            [fix],
        )
    finish("assert_overfits_one_batch", text, report)
