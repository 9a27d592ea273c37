"""The one zoo of small test models shared by every test module.

Each builder returns a fresh, randomly initialised model and an example input. Add to the zoo; do not
make private copies of these models in test files.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Pair = namedtuple("Pair", ["logits", "features"])


class TiedLM(nn.Module):
    """Embedding and output projection share one weight tensor (tied weights)."""

    def __init__(self, vocab: int = 20, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.proj(self.embed(idx))))


class SharedChild(nn.Module):
    """One Linear registered under two names and called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(6, 6)
        self.again = self.block
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.again(torch.relu(self.block(x)))))


class SmallCNN(nn.Module):
    """A tiny "pretrained backbone + new head" image classifier with BatchNorm."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


class MultiOutput(nn.Module):
    """Returns a namedtuple of two tensors of different shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.cls = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> Pair:
        h = torch.relu(self.body(x))
        return Pair(self.cls(h), h)


class DictInput(nn.Module):
    """Takes a dict of two tensors and returns a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.img = nn.Linear(5, 4)
        self.txt = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self.img(batch["image"]) + self.txt(batch["tokens"]).mean(1)
        return {"logits": self.head(h), "hidden": h}


class LazyNet(nn.Module):
    """Holds an uninitialised lazy module until its first forward."""

    def __init__(self) -> None:
        super().__init__()
        self.lazy = nn.LazyLinear(4)
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.lazy(x)))


class AuxHeadNet(nn.Module):
    """Like inception_v3: an aux head that is only used in train mode; outputs differ by mode."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(8, 8)
        self.aux = nn.Linear(8, 3)
        self.unused = nn.Linear(8, 3)  # never called: it gets no grad
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> Any:
        h = torch.relu(self.stem(x))
        if self.training:
            return Pair(self.fc(h), self.aux(h))
        return self.fc(h)


class Scale(nn.Module):
    """Multiplies by a constant: makes an activation (and its grad) explode or vanish on purpose."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def no_params() -> nn.Module:
    """A module tree with no parameters at all."""
    return nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Identity())


def stacked_blocks() -> nn.Module:
    """Twelve identical sibling blocks (for collapsing repeated rows) and a head."""
    return nn.Sequential(
        nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.GELU()) for _ in range(12)]),
        nn.Linear(8, 2),
    )


# name -> (builder, example-input builder)
ZOO: dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]] = {
    "tied": (TiedLM, lambda: torch.randint(0, 20, (2, 5))),
    "shared_child": (SharedChild, lambda: torch.randn(3, 6)),
    "small_cnn": (SmallCNN, lambda: torch.randn(4, 3, 8, 8)),
    "multi_output": (MultiOutput, lambda: torch.randn(2, 4)),
    "dict_input": (
        DictInput,
        lambda: {"image": torch.randn(2, 5), "tokens": torch.randint(0, 10, (2, 3))},
    ),
    "lazy": (LazyNet, lambda: torch.randn(2, 7)),
    "aux_head": (AuxHeadNet, lambda: torch.randn(4, 8)),
    "no_params": (no_params, lambda: torch.randn(2, 3)),
    "stacked": (stacked_blocks, lambda: torch.randn(2, 8)),
}


def build(name: str, seed: int = 0) -> tuple[nn.Module, Any]:
    """Build zoo model ``name`` and its example input, deterministically."""
    builder, make_input = ZOO[name]
    torch.manual_seed(seed)
    return builder(), make_input()


class LSTMLanguageModel(nn.Module):
    """Embedding, a 2-layer LSTM and a decoder: the word-level language model of PyTorch's examples."""

    def __init__(self, vocab: int = 1000, dim: int = 200, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, num_layers=layers)
        self.decoder = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.decoder(out)


class PackedGRUEncoder(nn.Module):
    """A bidirectional GRU over a packed batch of sequences of different lengths."""

    def __init__(self, dim: int = 16, hidden: int = 24) -> None:
        super().__init__()
        self.rnn = nn.GRU(dim, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, 3)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        return self.head(torch.cat([h[-2], h[-1]], dim=1))


# Recurrent models (not in ZOO: the generic zoo tests feed float inputs); name -> (builder, inputs)
RECURRENT: dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]] = {
    "lstm_lm": (LSTMLanguageModel, lambda: torch.randint(0, 1000, (35, 4))),
    "packed_gru": (PackedGRUEncoder, lambda: (torch.randn(3, 7, 16), torch.tensor([7, 4, 2]))),
    "rnn_tanh": (lambda: nn.RNN(12, 20, num_layers=2), lambda: torch.randn(9, 2, 12)),
    "lstm_proj": (lambda: nn.LSTM(12, 20, proj_size=8, bidirectional=True), lambda: torch.randn(6, 2, 12)),
}


def build_recurrent(name: str, seed: int = 0) -> tuple[nn.Module, Any]:
    """Build recurrent model ``name`` and its example input (a tuple is several arguments)."""
    builder, make_input = RECURRENT[name]
    torch.manual_seed(seed)
    return builder(), make_input()


class DecoderLM(nn.Module):
    """A decoder-only language model: embedding, causal transformer layers, an untied head.

    ``DecoderLM(32000, 4096, 32, 11008, 32)`` is Llama-7B-sized (6.6B params); build it under
    ``torch.device("meta")`` unless you mean to allocate it.
    """

    def __init__(self, vocab: int = 50, dim: int = 16, heads: int = 2, ff: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=tokens.device)
        return self.head(self.layers(self.embed(tokens), mask=mask, is_causal=True))
