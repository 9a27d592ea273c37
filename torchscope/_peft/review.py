"""What ``check_step`` adds for a PEFT model: the first-step ``lora_A`` note, and the causes of the
classic PEFT bugs it can see in one step.

- **lora_A on the first step.** peft initialises ``lora_B`` to zero, so on the first step after init
  ``d loss / d lora_A = lora_B^T (...)`` is exactly zero: ``lora_A`` does not move under plain SGD
  (AdamW's decoupled decay moves it anyway). Not a bug: a note, not a violation, and only when
  ``lora_B`` was zero before the step, ``lora_A``'s grad was exactly zero (not missing) at every
  ``optimizer.step()``, and ``lora_B`` itself did update.
- **Gradient checkpointing with frozen embeddings** (``use_reentrant=True`` and no
  ``enable_input_require_grads()``): the checkpointed blocks see no input that requires grad, so the
  adapters inside them get no grad. The cause of every adapter that got none, and a note on the
  ``RuntimeError`` a model without any trainable output raises.
- **A new task head left out of ``modules_to_save``**: peft froze it with the base, so it never
  trains (``head_not_trained``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import nn

from torchscope._adapters.layers import AdapterParts, adapter_parts, inner_model, is_peft_model, strip_wrapper
from torchscope._checkparts.numerics import host_floats, inf_norm
from torchscope._checkparts.report import Violation

__all__ = [
    "PEFT_KINDS",
    "PeftWatch",
    "checkpointing_gap",
    "first_step_note",
    "head_cause",
    "slow_start_cause",
]

#: The violation kind only a PEFT model can have.
PEFT_KINDS: tuple[str, ...] = ("head_not_trained",)

_TASK_TYPES = {
    "ForSequenceClassification": "SEQ_CLS",
    "ForTokenClassification": "TOKEN_CLS",
    "ForQuestionAnswering": "QUESTION_ANS",
}


def checkpointing_gap(model: nn.Module) -> str | None:
    """Why the checkpointed blocks of ``model`` get no grad, or None when they do.

    transformers checkpoints its layers with ``torch.utils.checkpoint``; with ``use_reentrant=True``
    a block whose inputs do not require grad is run outside autograd. With frozen input embeddings
    nothing requires grad before the first block unless ``enable_input_require_grads()`` hooked the
    embeddings (transformers < 4.35 never did; peft does it only when checkpointing was on before
    ``get_peft_model``).
    """
    inner = inner_model(model)
    checkpointed = [m for m in inner.modules() if getattr(m, "gradient_checkpointing", False) is True]
    if not checkpointed:
        return None
    func = getattr(checkpointed[0], "_gradient_checkpointing_func", None)
    if (getattr(func, "keywords", None) or {}).get("use_reentrant") is not True:
        return None
    if any(
        getattr(m, "_require_grads_hooks", None) or getattr(m, "_require_grads_hook", None)
        for m in model.modules()
    ):
        return None
    get_embeddings = getattr(inner, "get_input_embeddings", None)
    try:
        embeddings = get_embeddings() if callable(get_embeddings) else None
    except NotImplementedError:
        embeddings = None
    if not isinstance(embeddings, nn.Module) or any(p.requires_grad for p in embeddings.parameters()):
        return None
    return (
        "gradient checkpointing is on with use_reentrant=True and the input embeddings are frozen, so no input "
        "of the checkpointed blocks requires grad and torch.utils.checkpoint runs them outside autograd: no "
        "adapter inside them gets a grad; call model.enable_input_require_grads() after "
        "gradient_checkpointing_enable(), or pass gradient_checkpointing_kwargs={'use_reentrant': False}"
    )


def head_cause(model: nn.Module, head: str) -> str:
    """The cause of a frozen task head that is not in ``modules_to_save``, with its fix."""
    cls = type(inner_model(model)).__name__
    short = strip_wrapper(head).rpartition(".")[2]
    task = next((t for suffix, t in _TASK_TYPES.items() if cls.endswith(suffix)), None)
    config = f"LoraConfig(task_type='{task}', ...) or " if task else ""
    return (
        f"the task head '{short}' of {cls} is frozen and not in modules_to_save, so no step trains it: it keeps "
        f"the weights it was built with (random, for a head the fine-tune adds); give {config}"
        f"LoraConfig(modules_to_save=['{short}'], ...)"
    )


def slow_start_cause(b_norm: float) -> str:
    """The cause of a ``lora_A`` with a nonzero grad that did not move: its grad scales with ``lora_B``."""
    return (
        f"its grad is nonzero but too small to move it: lora_A's grad is proportional to its lora_B (max |lora_B| "
        f"{b_norm:.3g} before the step; peft starts lora_B at zero, so it is small for the first steps), and the "
        "update is below the precision of lora_A's values; under plain SGD this is LoRA's slow start: train with "
        "Adam/AdamW, whose update does not scale with the grad, or a larger lr"
    )


def first_step_note(idle: int, moved: int) -> str:
    """The note of a first step where ``lora_A`` got an exactly zero grad.

    >>> first_step_note(4, 0)
    "4 lora_A params did not change: on the first step after init lora_B is still zero, so lora_A's grad is exactly zero; not a bug: lora_A trains from the next step on (its lora_B has moved)"
    """
    parts = []
    if idle:
        parts.append(f"{idle} lora_A param{'s' if idle != 1 else ''} did not change")
    if moved:
        parts.append(f"{moved} lora_A param{'s' if moved != 1 else ''} changed by weight decay alone")
    return (
        f"{' and '.join(parts)}: on the first step after init lora_B is still zero, so lora_A's grad is exactly "
        "zero; not a bug: lora_A trains from the next step on (its lora_B has moved)"
    )


@dataclass
class PeftWatch:
    """What ``check_step`` records about a PEFT model before the step, and reads after it."""

    model: nn.Module
    parts: AdapterParts
    b_norms: list[float]  # max |lora_B| before the step, per LoRA pair
    gap: str | None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, model: nn.Module) -> PeftWatch | None:
        """None unless ``model`` is a PEFT model; one host transfer for the lora_B norms."""
        if not is_peft_model(model):
            return None
        parts = adapter_parts(model)
        norms = host_floats([inf_norm(parts.adapter[p.b].detach()) for p in parts.pairs])
        return cls(model, parts, norms, checkpointing_gap(model))

    def annotate(self, exc: BaseException) -> None:
        """Add the cause to the error a step raises when checkpointing cut every trainable path."""
        # add_note is Python 3.11+; on 3.10 the error goes out as it came
        if self.gap is not None and "does not require grad" in str(exc) and hasattr(exc, "add_note"):
            exc.add_note(f"torchscope: {self.gap}")

    def review(
        self,
        violations: Sequence[Violation],
        grads_seen: Callable[[str], list[float | None]],
        trainable: Sequence[str],
        frozen: Sequence[str],
        pattern_frozen: bool,
    ) -> list[Violation]:
        """The violations with the PEFT causes applied; the notes go to :attr:`notes`.

        ``grads_seen(name)`` is the trainable param's max |grad| at each ``optimizer.step()`` (None:
        no grad). ``frozen`` are the param names the check holds frozen, ``pattern_frozen`` whether
        the user chose them (a head chosen frozen is not a bug).
        """
        trainable_set = set(trainable)
        not_updated = {v.name for v in violations if v.kind == "trainable_not_updated"}
        idle: set[str] = set()
        slow: dict[str, float] = {}  # lora_A -> max |lora_B| before the step
        moved = 0
        for pair, b_norm in zip(self.parts.pairs, self.b_norms, strict=True):
            if pair.a not in trainable_set or pair.b not in trainable_set or pair.b in not_updated:
                continue
            grads = grads_seen(pair.a)
            if b_norm > 0:
                if pair.a in not_updated and any(g for g in grads):
                    slow[pair.a] = b_norm
                continue
            if grads and all(g == 0 for g in grads):
                if pair.a in not_updated:
                    idle.add(pair.a)
                else:
                    moved += 1
        if idle or moved:
            self.notes.append(first_step_note(len(idle), moved))
        out: list[Violation] = []
        for v in violations:
            if v.kind == "trainable_not_updated" and v.name in idle:
                continue
            if v.kind == "trainable_not_updated" and v.name in slow:
                v = Violation(v.kind, v.name, v.max_abs_change, slow_start_cause(slow[v.name]), v.fix)
            if (
                self.gap is not None
                and v.kind == "trainable_not_updated"
                and self.parts.is_adapter(v.name)
                and all(g is None for g in grads_seen(v.name))
            ):
                v = Violation(v.kind, v.name, v.max_abs_change, f"it got no grad: {self.gap}", v.fix)
            out.append(v)
        held = set(frozen) if pattern_frozen else set()
        for head in self.parts.heads:
            names = [n for n in self.parts.base if n == head or n.startswith(head + ".")]
            tensors = [self.parts.base[n] for n in names]
            under_adapter = any(n.startswith(head + ".") for n in self.parts.adapter)
            if names and not under_adapter and not any(t.requires_grad for t in tensors):
                if held and all(n in held for n in names):
                    continue
                cause = head_cause(self.model, head)
                out += [Violation("head_not_trained", n, None, cause) for n in names]
        return out
