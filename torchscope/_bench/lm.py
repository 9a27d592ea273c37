"""The benchmark of a language model (``hf:``): token batches, its own loss, and what frozen mode trains.

A causal LM's ``lm_head`` is tied to the input embeddings in most models (gpt2, bert's MLM head,
many small llamas), so "train the head only" would train the embedding matrix, the largest tensor
of the model, through the tie. Frozen mode therefore trains the **last block and the final norm**
(the top of the network, the usual cheap fine-tune of an LM) and keeps embeddings and ``lm_head``
frozen, tied or not. A classifier (``--task sequence-classification``) trains its new head
(``classifier``, ``score``...), as an image classifier does. No head is swapped: the loader built
the head with ``--num-labels``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from torchscope._adapters.layers import HEAD_NAMES as HF_HEAD_NAMES
from torchscope._check.reference import reference_loss
from torchscope._freeze import find_head
from torchscope._tokens import is_causal_lm, takes_labels, token_batch, vocab_size
from torchscope.errors import TorchscopeError

#: Tokens per sequence when none is given.
DEFAULT_SEQ_LEN = 128


def _require_head(model: nn.Module) -> None:
    if not takes_labels(model):
        if vocab_size(model) is None:  # not a language model: a plain module fed ids may have a head
            raise TorchscopeError(
                f"{type(model).__name__} takes token ids but computes no loss of its own (its forward takes "
                "no labels), and bench trains a token model through its own loss; bench an hf: model with "
                "--task causal-lm or --task sequence-classification"
            )
        raise TorchscopeError(
            f"{type(model).__name__} has no head, so no loss to train on; "
            "bench an hf: model with --task causal-lm or --task sequence-classification"
        )


class TokenBatches:
    """One synthetic token batch made once on the device: ids below ``vocab_size`` drawn from
    ``seed``, an all-ones mask, and labels (the ids for a causal LM, random classes for a classifier).

    Same interface as :class:`~torchscope._bench.data.Batches`: ``fixed`` is the step's arguments.
    """

    loader = None

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        batch_size: int,
        seq_len: int,
        dtype: torch.dtype,
        seed: int,
    ) -> None:
        _require_head(model)
        config = getattr(model, "config", None)
        for key in ("max_position_embeddings", "n_positions"):
            limit = getattr(config, key, None)
            if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < seq_len:
                raise TorchscopeError(
                    f"sequences of {seq_len} tokens are longer than the model's {limit} positions ({key}); "
                    f"give --tokens {batch_size}x{limit} or shorter"
                )
        gen = torch.Generator().manual_seed(seed)
        batch = token_batch(
            model, (batch_size, seq_len), device=device, generator=gen, labels=True, dtype=dtype
        )
        self.fixed: tuple[Any, ...] = (batch,)

    def next(self) -> tuple[Any, ...]:
        return self.fixed


class TokenLoss:
    """The loss of ``check-freeze``'s reference step on a token batch (:func:`reference_loss`): the
    model's own next-token loss for a causal LM, its cross-entropy on the random labels for a classifier."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, forward: Callable[..., Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss = reference_loss(forward(**batch), batch, self.generator)
        if loss is None:
            raise TorchscopeError(
                "the model's output does not depend on any trainable parameter; bench needs one"
            )
        return loss


def _top(model: nn.Module) -> list[str]:
    """The last block and the final norm(s) after it: the names frozen mode trains in a causal LM."""
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise TorchscopeError(
            f"no stack of blocks (an nn.ModuleList) found in {type(model).__name__}; bench it with --finetune full"
        )
    name, blocks = max(lists, key=lambda item: sum(p.numel() for p in item[1].parameters()))
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    names = [f"{name}.{len(blocks) - 1}"]
    after = False
    for sibling, module in parent.named_children():
        if sibling == child:
            after = True
        elif after and "norm" in type(module).__name__.lower() and any(True for _ in module.parameters()):
            names.append(f"{parent_name}.{sibling}" if parent_name else sibling)
    return names


def _classifier_head(model: nn.Module) -> str:
    children = dict(model.named_children())
    for name in HF_HEAD_NAMES:
        if name in children:
            return name
    return find_head(model)


def lm_head_name(model: nn.Module) -> str:
    """What a token model's fine-tune trains on top: the output layer (``lm_head``) or the classifier."""
    _require_head(model)
    if is_causal_lm(model):
        out = getattr(model, "get_output_embeddings", lambda: None)()
        found = [n for n, m in model.named_modules() if m is out] if isinstance(out, nn.Module) else []
        return found[0] if found else ", ".join(_top(model))
    return _classifier_head(model)


def freeze_lm(model: nn.Module) -> str:
    """Frozen mode of a token model: train the last block + final norm (causal LM) or the
    classifier head; freeze every other param. Returns what stays trainable, comma-separated."""
    _require_head(model)
    names = _top(model) if is_causal_lm(model) else [_classifier_head(model)]
    keep = {id(p) for n in names for p in model.get_submodule(n).parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return ", ".join(names)
