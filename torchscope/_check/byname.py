"""The violations only a by-name comparison sees, each with its cause and fix: a tensor under check
that was replaced, a name that vanished, a new name where everything was frozen, and a
``requires_grad`` flag that changed. Read from a :class:`~torchscope._check.snapshot.SnapshotDiff`;
no torch.

==========================  ===========================================================================
``tensor_replaced``         the name holds another tensor after the step (a new ``nn.Parameter``, a
                            swapped module, a re-bound buffer), or the same one with data of another
                            shape or dtype (``p.data = ...``, as ``resize_token_embeddings`` does)
``tensor_removed``          a name under check is gone after the step
``tensor_added``            a new name where everything was frozen (a swapped-in module)
``requires_grad_changed``   a param's ``requires_grad`` changed during the step
==========================  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

from torchscope._check.snapshot import NameChange, SnapshotDiff
from torchscope._checkparts.grouping import FREEZE_FIX
from torchscope._checkparts.report import BY_NAME_KINDS, Violation

__all__ = ["BY_NAME_KINDS", "by_name_violations", "flag_on_cause", "moved_by_flag_cause"]


# What replaces a param in real code; named in the causes so the user recognises their own call.
_REPLACERS = "resize_token_embeddings, a new head, adapter loading"
_FLAG_CALLERS = "model.requires_grad_(), resize_token_embeddings, adapter loading, unfreeze code"


def _alias(c: NameChange) -> str:
    return f" (it is also '{c.aliases[0]}')" if c.aliases else ""


def _module_swap(c: NameChange) -> str | None:
    """'its module 'backbone' was replaced by a new module', or None."""
    m = c.replaced_module
    if m is None:
        return None
    if c.status == "removed":
        return f"its module '{m}' was replaced or deleted"
    return f"its module '{m}' was replaced by a new module"


def _details(c: NameChange) -> str:
    """What the new tensor is, in a few words: shape, dtype, flag, values."""
    parts = []
    if c.shape_before is not None and c.shape_after is not None and c.shape_before != c.shape_after:
        parts.append(f"shape {c.shape_text}")
    if c.dtype_before and c.dtype_after and c.dtype_before != c.dtype_after:
        parts.append(f"dtype {c.dtype_before} -> {c.dtype_after}")
    if c.is_param and c.requires_grad_after is not None and c.requires_grad_after != c.requires_grad_before:
        parts.append(f"requires_grad={c.requires_grad_after}")
    if c.changed is True:
        parts.append("values changed")
    elif c.changed is False:
        parts.append("same values")
    return f" ({', '.join(parts)})" if parts else ""


def _replaced_cause(c: NameChange) -> str:
    what = "param" if c.is_param else "buffer"
    head = f"the name holds a new tensor after the step{_details(c)}{_alias(c)}"
    if c.same_object:
        return (
            f"it holds data of another shape or dtype after the step{_details(c)}{_alias(c)}: its .data was "
            f"replaced in place (p.data = ..., as resize_token_embeddings does, or model.to(dtype)), so the {what} "
            "under check is not the one the step started with; resize or convert before freezing and checking, "
            "and re-apply freeze(...) after it"
        )
    swap = _module_swap(c)
    if c.role == "trainable":
        how = swap or f"something assigned a new nn.Parameter to it ({_REPLACERS})"
        return (
            f"{head}: {how}, so an optimizer built before the step still holds the old one and the new one does not "
            "train; build the optimizer after replacing it"
        )
    if c.is_param:
        how = swap or f"something assigned a new nn.Parameter to it ({_REPLACERS})"
        return (
            f"{head}: {how}, so the frozen tensor is no longer the model's and the new one is not frozen by "
            "anything you did before; freeze after replacing, or re-apply freeze(...) after it"
        )
    how = swap or (
        f"something re-bound this buffer of {c.module_type_after or 'its module'} '{c.module_name}' to a new tensor "
        f"(module.{c.name.rpartition('.')[2]} = ... in forward or step(), instead of an in-place update)"
    )
    return f"{head}: {how}; find that assignment, or do not expect this buffer frozen"


def _removed_cause(c: NameChange) -> str:
    how = _module_swap(c) or "something deleted it (del, a module swap, adapter unloading)"
    if c.role == "trainable":
        return (
            f"the name is gone after the step{_alias(c)}: {how}, so the optimizer updates a tensor the model no "
            "longer has; change the model before building the optimizer"
        )
    return (
        f"the name is gone after the step{_alias(c)}: {how}, so the frozen tensor is no longer part of the model "
        "and what replaced it is not checked as frozen; change the model before freezing it, then re-apply freeze(...)"
    )


def _added_cause(c: NameChange) -> str:
    how = _module_swap(c) or "something added it to a module whose tensors were all frozen"
    flag = "requires_grad=True" if c.requires_grad_after else "requires_grad=False"
    if c.is_param:
        trains = "so it trains although" if c.requires_grad_after else "so nothing froze it on purpose, although"
        return (
            f"a new param after the step ({flag}): {how}, {trains} everything around it was "
            "frozen; freeze the new module after replacing it, or re-apply freeze(...)"
        )
    return (
        f"a new buffer after the step: {how}, where everything was frozen; "
        "replace modules before freezing, or do not expect this part frozen"
    )


def flag_on_cause(alias: str = "") -> str:
    """The cause of a frozen param whose ``requires_grad`` was switched back on during the step."""
    return (
        f"requires_grad was switched back on during the step{alias}, so backward gives it a grad and an optimizer "
        f"that holds it updates it; find what switched it on ({_FLAG_CALLERS}), or re-apply freeze(...) after it"
    )


def moved_by_flag_cause(alias: str = "") -> str:
    """The cause of a frozen param that moved because its ``requires_grad`` was switched back on: it
    only points at its ``requires_grad_changed`` violation, which says the whole of it (said once)."""
    return (
        f"requires_grad was switched back on during the step{alias}, so it trained (requires_grad_changed says "
        "what to look for, and the fix)"
    )


def _flag_cause(c: NameChange) -> str:
    if c.requires_grad_after:
        return f"it had requires_grad=False before the step and True after: {flag_on_cause(_alias(c))}"
    return (
        f"it had requires_grad=True before the step and False after{_alias(c)}: something in the step froze "
        "it, so it stops training from now on; freeze before training, not inside the step"
    )


def by_name_violations(diff: SnapshotDiff, *, roles: Sequence[str] = ("frozen", "trainable")) -> list[Violation]:
    """The by-name violations of ``diff`` for the names of ``roles``, in model order.

    A frozen param replaced by one that requires grad, or whose flag was switched back on, carries
    the freeze call as its fix (grouped: one call for all of them).
    """
    out: list[Violation] = []
    for c in diff.changes:
        if c.role not in roles:
            continue
        fix = FREEZE_FIX if c.role == "frozen" and c.is_param and c.requires_grad_after else None
        if c.status == "replaced":
            change = c.max_abs_change if c.shape_before == c.shape_after else None
            out.append(Violation("tensor_replaced", c.name, change, _replaced_cause(c), fix))
        elif c.status == "removed":
            out.append(Violation("tensor_removed", c.name, None, _removed_cause(c)))
        elif c.status == "added":
            out.append(Violation("tensor_added", c.name, None, _added_cause(c), fix))
        elif c.flag_changed:
            out.append(Violation("requires_grad_changed", c.name, None, _flag_cause(c), fix))
    return out
