"""Token-id inputs for language models (Hugging Face and PEFT models, or any model with a vocab).

A *token model* has a ``config.vocab_size`` and a ``forward`` that takes ``input_ids``. Its synthetic
batch is a dict of keyword arguments: ``input_ids`` drawn uniformly below ``vocab_size`` (from the
torch RNG, or ``generator``), an all-ones ``attention_mask`` and, when a loss is wanted from a
causal LM, ``labels`` equal to ``input_ids`` (the model shifts them itself: its own next-token loss).
No transformers import: the model is only inspected.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from torchscope.errors import SpecError


def _config(model: nn.Module) -> Any:
    # PeftModel forwards attribute lookups to the wrapped model, so .config reaches the base config
    try:
        return getattr(model, "config", None)
    except AttributeError:
        return None


def vocab_size(model: nn.Module) -> int | None:
    """``model.config.vocab_size`` (the text config's for multimodal configs), or None.

    >>> vocab_size(nn.Linear(2, 2)) is None
    True
    """
    config = _config(model)
    if config is None:
        return None
    size = getattr(config, "vocab_size", None)
    if size is None and callable(getattr(config, "get_text_config", None)):
        size = getattr(config.get_text_config(), "vocab_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def _forward_params(model: nn.Module) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}


def is_token_model(model: nn.Module) -> bool:
    """Whether ``model`` takes token ids: a vocab size and an ``input_ids`` argument.

    >>> is_token_model(nn.Embedding(10, 4))
    False
    """
    if vocab_size(model) is None:
        return False
    return "input_ids" in _forward_params(model) or "input_ids" in _peft_params(model)


def _peft_params(model: nn.Module) -> Mapping[str, inspect.Parameter]:
    # PeftModel.forward(*args, **kwargs) hands everything to the base model's forward
    base = getattr(model, "base_model", None)
    inner = getattr(base, "model", None)
    return _forward_params(inner) if isinstance(inner, nn.Module) else {}


def is_causal_lm(model: nn.Module) -> bool:
    """Whether ``model`` computes its own next-token loss from ``labels`` (``*ForCausalLM``, LM heads)."""
    names = [type(model).__name__]
    base = getattr(getattr(model, "base_model", None), "model", None)
    if isinstance(base, nn.Module):
        names.append(type(base).__name__)
    return any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names)


def token_batch(
    model: nn.Module,
    shape: Sequence[int],
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    labels: bool = False,
    dtype: torch.dtype = torch.int64,
) -> dict[str, torch.Tensor]:
    """A synthetic batch of token ids for ``model``: ``input_ids``, ``attention_mask`` (and ``labels``).

    ``shape`` is ``(batch, length)`` (or ``(length,)``). ``labels=True`` adds labels, if the model
    takes them (a base model without a head does not): ``input_ids``
    for a causal LM (its own shifted loss), random classes below ``config.num_labels`` for a
    sequence classifier, one per token for a token classifier.

    >>> class LM(nn.Module):
    ...     config = type("C", (), {"vocab_size": 50})()
    ...     def forward(self, input_ids, attention_mask=None):
    ...         return input_ids
    >>> batch = token_batch(LM(), (2, 8))
    >>> sorted(batch), tuple(batch["input_ids"].shape), int(batch["input_ids"].max()) < 50
    (['attention_mask', 'input_ids'], (2, 8), True)
    """
    vocab = vocab_size(model)
    if vocab is None:
        raise SpecError(
            f"{type(model).__name__} has no config.vocab_size; token inputs need a language model"
        )
    dims = tuple(int(d) for d in shape)
    if not 1 <= len(dims) <= 2 or min(dims) < 1:
        raise SpecError(f"token input size {dims} must be (batch, length), e.g. 2,128")
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise SpecError(f"token ids need an integer dtype, not {str(dtype).removeprefix('torch.')}; use long")
    limit = min(vocab, int(torch.iinfo(dtype).max) + 1)
    ids = torch.randint(0, limit, dims, generator=generator, dtype=torch.int64).to(dtype)
    dev = torch.device(device) if device is not None else None
    batch = {"input_ids": ids}
    # On meta the all-ones mask is left out: models read "no mask" as all ones, and checking that a
    # mask is all ones (transformers does, to skip it) needs values meta tensors do not have.
    if dev is None or dev.type != "meta":
        batch["attention_mask"] = torch.ones(dims, dtype=torch.int64)
    if labels and _takes_labels(model):
        batch["labels"] = token_labels(model, ids, generator)
    return {k: v.to(dev) for k, v in batch.items()} if dev is not None else batch


def _takes_labels(model: nn.Module) -> bool:
    return "labels" in _forward_params(model) or "labels" in _peft_params(model)


def takes_labels(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``labels`` (a model with a head computes its own loss from them)."""
    return _takes_labels(model)


def token_labels(model: nn.Module, ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The labels of a synthetic batch of ``ids``: ``ids`` for a causal LM (the model shifts them),
    random classes below ``config.num_labels`` for a classifier (one per token for token classification)."""
    if is_causal_lm(model):
        return ids.clone().to(torch.int64)
    names = [type(model).__name__, type(getattr(getattr(model, "base_model", None), "model", None)).__name__]
    classes = int(getattr(_config(model), "num_labels", 2) or 2)
    if any(n.endswith("ForTokenClassification") for n in names):
        return torch.randint(0, classes, tuple(ids.shape), generator=generator)
    return torch.randint(0, classes, (ids.shape[0] if ids.dim() == 2 else 1,), generator=generator)


def own_loss(output: Any) -> torch.Tensor | None:
    """The scalar loss a model returned itself (a Hugging Face output's ``loss``), or None.

    >>> own_loss({"loss": torch.tensor(1.5), "logits": torch.zeros(2)})
    tensor(1.5000)
    """
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None
