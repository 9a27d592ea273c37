"""The causes: for each violation, one sentence that says why it happened and what fixes it, read
from what the step check saw (grads and optimizer state at ``optimizer.step()``, flags before)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from torchscope._check.byname import moved_by_flag_cause
from torchscope._checkparts.grouping import FREEZE_FIX
from torchscope._checkparts.numerics import Floats
from torchscope._checkparts.plan import CheckedTensor, Plan, is_norm_with_stats, module_type
from torchscope._checkparts.probe import OptimizerProbe, group_of

__all__ = ["WRITE_HINT", "Causes", "nonfinite_cause"]


def nonfinite_cause(name: str, plan: Plan, *, before: bool = False, source: str | None = None) -> str:
    """Why ``name`` (a param, ``param.grad`` or buffer) holds NaN/Inf after the step, and the fix.

    ``before``: it already held NaN/Inf before the step, so the step did not put them there (a
    frozen weight loaded with NaN is "NaN before the step", not "lr too high"). ``source``: a param
    or buffer that held NaN/Inf before the step, which the step's forward carried further.
    """
    base = name[: -len(".grad")] if name.endswith(".grad") else name
    frozen = any(base in t.names for t in plan.frozen + plan.frozen_buffers)
    if before:
        if name.endswith(".grad"):
            return (
                "its grad already held NaN/Inf before the step (left from an earlier backward), so the step did not "
                "put them there; clear grads before the step (zero_grad(set_to_none=True)) and find the backward "
                "that first wrote them"
            )
        return (
            "it already held NaN/Inf before the step, so the step did not put them there: the weights were loaded or "
            "initialised that way, or an earlier step wrote them; reload or re-initialise them (torchscope stats "
            "names the tensors), and find the step that first wrote them"
        )
    if source is not None:
        return (
            f"it was finite before the step, and '{source}' already held NaN/Inf before it: the step carried them "
            f"here (forward, backward, the update); fix '{source}' first"
        )
    if name.endswith(".grad"):
        return (
            "its grad has NaN/Inf after the step: the loss or an op in forward produced it (log of 0, "
            "division by 0, fp16 overflow); find it with torch.autograd.detect_anomaly() and clip or scale the loss"
        )
    if frozen:
        return (
            "it is frozen, yet NaN/Inf are in it after the step: the write that changed it (see its frozen change) "
            "left them there; keep that write away from frozen tensors (fingerprint mode cannot tell whether they "
            "were there before; mode='exact' can)"
        )
    if any(name in b.names for b in plan.buffers):
        return (
            "this buffer has NaN/Inf after the step (a norm layer's running stats fed NaN/Inf "
            "activations?); fix the inputs or the layer before it"
        )
    return (
        "this param has NaN/Inf after the step: the update blew up (lr too high, a NaN loss, fp16 "
        "overflow); lower the lr, clip grads, or use torch.amp.GradScaler"
    )


WRITE_HINT = (
    "an in-place op in forward, a .data/.copy_() update, an EMA or load_state_dict inside step()"
)


@dataclass
class Causes:
    """Explains each violation from what the step check recorded (one host transfer already done)."""

    plan: Plan
    optimizer: torch.optim.Optimizer | None
    probe: OptimizerProbe | None
    floats: Floats
    sights: list[tuple[list[int | None], list[int | None]]]
    grad_before: list[int | None]
    grad_after: list[int | None]
    rg_before: list[bool]
    rg_after: list[bool] = field(default_factory=list)  # per frozen param, read by name after the step

    def _alias(self, t: CheckedTensor) -> str:
        return f" (it is also '{t.names[1]}')" if len(t.names) > 1 else ""

    def _at_step(self, j: int) -> tuple[list[float | None], list[float | None]]:
        grads = [self.floats.get(g[j]) for g, _ in self.sights]
        moms = [self.floats.get(m[j]) for _, m in self.sights]
        return grads, moms

    def _switched_on(self, j: int) -> bool:
        return not self.rg_before[j] and j < len(self.rg_after) and self.rg_after[j]

    def frozen_param_fix(self, j: int) -> str | None:
        """The one call that fixes frozen param ``j`` with its group, where there is one (a flag
        switched back on: its ``requires_grad_changed`` violation carries it, said once)."""
        return FREEZE_FIX if self.rg_before[j] else None

    def frozen_param_cause(self, j: int) -> str:
        t = self.plan.frozen[j]
        p = t.tensor
        alias = self._alias(t)
        if self.rg_before[j]:
            return (
                f"it has requires_grad=True{alias}, so backward gives it a grad and the optimizer updates it; "
                "it is not frozen at all: freeze it with torchscope.freeze (the call below) or p.requires_grad_(False)"
            )
        if self._switched_on(j):
            return moved_by_flag_cause(alias)
        if self.optimizer is None:
            before = self.floats.get(self.grad_before[j])
            after = self.floats.get(self.grad_after[j])
            if before:
                return (
                    f"its .grad from before the freeze was still set (max |grad| {before:.3g}){alias}, so an "
                    "optimizer step applied it; set p.grad = None after freezing (pass optimizer= for a precise cause)"
                )
            if after is not None:
                return (
                    f"its grad is zero rather than None{alias}, so weight decay or momentum in the optimizer moves "
                    "it; use optimizer.zero_grad(set_to_none=True) and build the optimizer from trainable params only"
                )
            return (
                f"it changed with no grad to apply{alias}, so something other than an optimizer wrote to it "
                f"({WRITE_HINT}); pass optimizer= to rule the optimizer out"
            )
        group = group_of(self.optimizer).get(id(p))
        if group is None:
            return (
                f"it changed although no optimizer holds it{alias}, so something else wrote to it ({WRITE_HINT}); "
                "find that write and skip frozen params there"
            )
        if not self.sights:
            return f"it changed but optimizer.step() never ran in step(){alias}, so something else wrote to it ({WRITE_HINT})"
        grads, moms = self._at_step(j)
        nonzero = [g for g in grads if g]
        if nonzero:
            return (
                f"its .grad was still set from before the freeze (max |grad| {max(nonzero):.3g} at optimizer.step())"
                f"{alias}, and the optimizer applied it; clear it after freezing with p.grad = None "
                "(model.zero_grad(set_to_none=True))"
            )
        if any(g is not None for g in grads):
            g = self.optimizer.param_groups[group]
            reasons = []
            if g.get("weight_decay", 0):
                reasons.append(f"weight_decay={g['weight_decay']}")
            if any(m for m in moms):
                reasons.append("momentum state from before the freeze")
            what = " and ".join(reasons) if reasons else "its state"
            fix = "use optimizer.zero_grad(set_to_none=True) (the default)"
            fix += (
                ", and rebuild the optimizer after freezing" if any(m for m in moms)
                else ", and build the optimizer from trainable params only"
            )
            return f"its grad was zero rather than None at optimizer.step(){alias}, so {what} moved it; {fix}"
        decay = self.optimizer.param_groups[group].get("weight_decay", 0)
        if decay:
            return (
                f"it had no grad at optimizer.step(){alias}, yet it is in param group {group} with "
                f"weight_decay={decay}: an optimizer that decays every param it holds, grad or not, shrank it "
                f"(or something else wrote to it: {WRITE_HINT}); build the optimizer from trainable params only"
            )
        return (
            f"it had no grad at optimizer.step(), so the optimizer skipped it{alias}; something else wrote to it "
            f"({WRITE_HINT})"
        )

    def buffer_cause(self, t: CheckedTensor) -> str:
        module = t.module
        kind = module_type(module)
        if is_norm_with_stats(module):
            return (
                f"its {kind} module ran in train mode during step(), so its running stats moved; call .eval() "
                "on the frozen norm layers after every model.train(), or replace them with "
                "torchvision.ops.FrozenBatchNorm2d"
            )
        return (
            f"a buffer of {kind} '{t.module_name}' was written during step() ({WRITE_HINT}); "
            "find that write, or do not expect this buffer frozen"
        )

    def grads_seen(self, j: int) -> list[float | None]:
        """Param ``j``'s (frozen + trainable order) max |grad| at each ``optimizer.step()`` (after the
        step, without an optimizer); None where it had no grad."""
        if self.optimizer is not None and self.sights:
            return self._at_step(j)[0]
        return [self.floats.get(self.grad_after[j])]

    def got_no_grad(self, j: int) -> bool:
        """Whether param ``j`` (frozen + trainable order) had no grad at any ``optimizer.step()``
        (after the step, without an optimizer): no forward on this input used it."""
        if self.optimizer is not None and self.sights:
            return all(self.floats.get(g[j]) is None for g, _ in self.sights)
        return self.floats.get(self.grad_after[j]) is None

    def trainable_cause(self, j: int) -> str:
        t = (self.plan.frozen + self.plan.trainable)[j]
        p = t.tensor
        grads_after = self.floats.get(self.grad_after[j])
        if self.optimizer is not None:
            group = group_of(self.optimizer).get(id(p))
            if group is None:
                return (
                    "it requires grad but is in no optimizer param group, so nothing updates it; pass it to the "
                    "optimizer (build the optimizer after replace_head/unfreeze, or add_param_group)"
                )
            if not self.sights:
                return (
                    "optimizer.step() never ran during step() (torch.amp.GradScaler skips it when grads are "
                    "inf/NaN); call it, or check the scaler"
                )
            lr = self.optimizer.param_groups[group].get("lr")
            if isinstance(lr, int | float | torch.Tensor) and float(lr) == 0:
                return (
                    f"its param group {group} has lr=0 (a warm-up scheduler at step 0?), so the update is zero; "
                    "give the group a positive lr"
                )
            grads, _ = self._at_step(j)
        else:
            grads = [grads_after]
        # Without an optimizer the grads are only seen after step(), which may have cleared them.
        seen = "" if self.optimizer is not None else " (seen after step(); pass optimizer= to see it at optimizer.step())"
        if all(g is None for g in grads):
            return (
                "it got no grad: it is not on the path from the loss (an unused branch, e.g. an inception aux "
                f"head, or an output the loss ignores); use it in the loss, or freeze it{seen}"
            )
        if not any(g for g in grads):
            return (
                "its grad was all zero (the loss does not depend on it here: dead ReLUs, a zero-initialised "
                f"layer after it, a masked output), so there was nothing to apply{seen}"
            )
        return (
            "it had a nonzero grad but did not change: the update is below its dtype's precision (lr too "
            f"small?) or no optimizer stepped it{seen}"
        )


