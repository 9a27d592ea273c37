"""Multiply-accumulates of the fused recurrent kernels (one op runs a whole layer, or all of them).

Every recurrent layer multiplies each token it processes by each of its 2-D weight matrices once
per direction: ``W_ih`` (gates x hidden, input), ``W_hh`` (gates x hidden, hidden or proj) and, for an
LSTM with ``proj_size``, ``W_hr`` (proj, hidden). So a kernel's MACs are *tokens x the sum of its
weight matrices' sizes*, where tokens are the real timesteps: ``T x B`` for a padded batch and
``sum(batch_sizes)`` for a packed sequence (its data is already ``(sum(batch_sizes), input)``).
Biases and the gate nonlinearities are elementwise, not multiply-accumulates (see
:mod:`torchscope._flops.ops`). Returned values are FLOPs, 2 per MAC, FlopCounterMode's unit.

The CPU kernel ``mkldnn_rnn_layer`` runs one layer and one direction; cuDNN's ``_cudnn_rnn`` and
MIOpen's ``miopen_rnn`` run every layer and direction. The decomposed paths (nn.RNN/GRU on the CPU,
every cell on the meta device, packed sequences on the CPU) are ``addmm``/``mm`` and counted as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

aten = torch.ops.aten

# gates per cell in the modes of cuDNN, MIOpen and oneDNN: RNN_RELU, RNN_TANH, LSTM, GRU
GATES = {0: 1, 1: 1, 2: 4, 3: 3}


def tokens(x: Any) -> int:
    """Timesteps times batch that ``x`` holds: ``(T, B, I)``, ``(B, T, I)`` or packed ``(N, I)``."""
    return x.numel() // x.shape[-1] if x.dim() and x.shape[-1] else 0


def matrix_sizes(weights: Sequence[Any]) -> int:
    """The summed sizes of the 2-D tensors (the weight matrices) among ``weights``; biases are 1-D."""
    return sum(w.numel() for w in weights if isinstance(w, torch.Tensor) and w.dim() == 2)


def stacked_rnn_macs(
    tokens: int, input_size: int, mode: int, hidden: int, proj: int, layers: int, directions: int
) -> int:
    """MACs of a stacked RNN from its configuration, when its weights are not given one by one."""
    out = proj or hidden
    total = 0
    for layer in range(layers):
        width = input_size if layer == 0 else out * directions
        total += directions * (GATES[mode] * hidden * (width + out) + proj * hidden)
    return tokens * total


def mkldnn_rnn_layer_flop(
    input: Any, weight0: Any, weight1: Any, *args: Any, out_val: Any = None, **kw: Any
) -> int:
    """``aten.mkldnn_rnn_layer``: one layer, one direction; ``weight0``/``weight1`` are W_ih, W_hh."""
    return 2 * tokens(input) * matrix_sizes((weight0, weight1))


def cudnn_rnn_flop(
    input: Any,
    weight: Sequence[Any],
    weight_stride0: int,
    weight_buf: Any,
    hx: Any,
    cx: Any,
    mode: int,
    hidden_size: int,
    proj_size: int,
    num_layers: int,
    batch_first: bool,
    dropout: float,
    train: bool,
    bidirectional: bool,
    *args: Any,
    out_val: Any = None,
    **kw: Any,
) -> int:
    """``aten._cudnn_rnn``: every layer and direction in one call (weights one by one, or a flat buffer)."""
    per_token = matrix_sizes(weight)
    if per_token:
        return 2 * tokens(input) * per_token
    dirs = 2 if bidirectional else 1
    return 2 * stacked_rnn_macs(
        tokens(input),
        int(input.shape[-1]),
        int(mode),
        int(hidden_size),
        int(proj_size),
        int(num_layers),
        dirs,
    )


def miopen_rnn_flop(
    input: Any,
    weight: Sequence[Any],
    weight_stride0: int,
    hx: Any,
    cx: Any,
    mode: int,
    hidden_size: int,
    num_layers: int,
    batch_first: bool,
    dropout: float,
    train: bool,
    bidirectional: bool,
    *args: Any,
    out_val: Any = None,
    **kw: Any,
) -> int:
    """``aten.miopen_rnn``: like cuDNN's, without projections."""
    per_token = matrix_sizes(weight)
    if per_token:
        return 2 * tokens(input) * per_token
    dirs = 2 if bidirectional else 1
    return 2 * stacked_rnn_macs(
        tokens(input), int(input.shape[-1]), int(mode), int(hidden_size), 0, int(num_layers), dirs
    )


RNN_FORMULAS: dict[Any, Any] = {
    aten.mkldnn_rnn_layer: mkldnn_rnn_layer_flop,
    aten._cudnn_rnn: cudnn_rnn_flop,
    aten.miopen_rnn: miopen_rnn_flop,
}
