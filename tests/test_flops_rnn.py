"""Recurrent layers: summary's MACs against a count by hand, on every path torch takes.

A recurrent layer multiplies every real timestep of every sequence by each weight matrix once per
direction: W_ih (gates*H x in) and W_hh (gates*H x out), plus W_hr (P x H) with ``proj_size``, where
gates is 1 (RNN), 3 (GRU) or 4 (LSTM), out is P or H, and ``in`` is the input size for layer 0 and
``out * directions`` above it. Padding of a packed batch is not computed and not counted.

The CPU runs an LSTM as one ``mkldnn_rnn_layer`` op per layer and direction (oneDNN) and
RNN/GRU/projected LSTMs/packed batches as addmm steps; the meta device decomposes everything;
cuDNN and MIOpen run the whole stack as one ``_cudnn_rnn`` / ``miopen_rnn`` op (called here directly,
on meta tensors, through their meta kernels).
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import pytest
import torch
from torch import nn
from zoo import build_recurrent

import torchscope
from torchscope._flops import MacCounter

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4, "lstm_proj": 4}
IN, H, P, T, B = 6, 10, 4, 5, 3
LENGTHS = [5, 3, 2]  # packed: 10 real timesteps of 15


def hand_count(cell: str, layers: int, bidirectional: bool, tokens: int) -> int:
    gates, dirs = GATES[cell], 2 if bidirectional else 1
    proj = P if cell == "lstm_proj" else 0
    out = proj or H
    per_token = 0
    for layer in range(layers):
        width = IN if layer == 0 else out * dirs
        per_token += dirs * (gates * H * width + gates * H * out + proj * H)
    return tokens * per_token


def make(cell: str, layers: int, bidirectional: bool, batch_first: bool) -> nn.Module:
    kw = {"num_layers": layers, "bidirectional": bidirectional, "batch_first": batch_first}
    if cell.startswith("rnn"):
        return nn.RNN(IN, H, nonlinearity=cell[4:], **kw)
    if cell == "gru":
        return nn.GRU(IN, H, **kw)
    return nn.LSTM(IN, H, proj_size=P if cell == "lstm_proj" else 0, **kw)


class Packed(nn.Module):
    def __init__(self, rnn: nn.Module, batch_first: bool) -> None:
        super().__init__()
        self.rnn, self.batch_first = rnn, batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = torch.tensor(LENGTHS)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=self.batch_first)
        return self.rnn(packed)[0].data


# meta runs no packed batch: pack_padded_sequence reads the lengths' values
CASES = [
    (backend, *case)
    for backend in ("cpu", "cpu-no-onednn", "meta")
    for case in itertools.product(GATES, [1, 2], [False, True], [False, True], [False, True])
    if not (backend == "meta" and case[-1])
]


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN:UserWarning")
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
@pytest.mark.parametrize(("backend", "cell", "layers", "bidirectional", "batch_first", "packed"), CASES)
def test_mult_adds_match_the_hand_count(
    backend: str, cell: str, layers: int, bidirectional: bool, batch_first: bool, packed: bool
) -> None:
    torch.manual_seed(0)
    rnn = make(cell, layers, bidirectional, batch_first)
    model: nn.Module = Packed(rnn, batch_first) if packed else rnn
    device = "meta" if backend == "meta" else "cpu"
    model = model.to(device)
    shape = (B, T, IN) if batch_first else (T, B, IN)
    tokens = sum(LENGTHS) if packed else T * B
    flags = torch.backends.mkldnn.flags(enabled=False) if backend == "cpu-no-onednn" else nullcontext()
    with flags:
        s = torchscope.summary(model, input_data=torch.randn(shape, device=device), compare_modes=False)
    assert s.total_mult_adds == hand_count(cell, layers, bidirectional, tokens)
    assert s.uncounted_ops == () and not s.mult_adds_lower_bound
    rnn_row = next(r for r in s.rows if r.type == type(rnn).__name__)
    assert rnn_row.mult_adds == s.total_mult_adds


def test_the_cpu_lstm_runs_the_fused_onednn_kernel_and_it_is_counted() -> None:
    s = torchscope.summary(make("lstm", 2, True, False), input_size=(T, B, IN), compare_modes=False)
    assert dict(s.ops)["aten.mkldnn_rnn_layer"] == "counted"
    assert dict(s.mult_adds_by_op)["aten.mkldnn_rnn_layer"] == hand_count("lstm", 2, True, T * B)


@pytest.mark.parametrize(
    ("cell", "mode"), [("rnn_relu", 0), ("rnn_tanh", 1), ("lstm", 2), ("gru", 3), ("lstm_proj", 2)]
)
@pytest.mark.parametrize(
    ("layers", "bidirectional", "packed"), [(1, False, False), (2, True, False), (2, True, True)]
)
def test_cudnn_kernel_on_meta(cell: str, mode: int, layers: int, bidirectional: bool, packed: bool) -> None:
    rnn = make(cell, layers, bidirectional, False).to("meta")
    weights = list(rnn._flat_weights)  # what nn.LSTM passes to _cudnn_rnn on CUDA
    dirs = 2 if bidirectional else 1
    proj = P if cell == "lstm_proj" else 0
    tokens = sum(LENGTHS) if packed else T * B
    x = torch.empty((tokens, IN) if packed else (T, B, IN), device="meta")
    hx = torch.empty(layers * dirs, B, proj or H, device="meta")
    cx = torch.empty(layers * dirs, B, H, device="meta") if mode == 2 else None
    batch_sizes = [3, 3, 2, 1, 1] if packed else []
    with MacCounter() as c:
        torch.ops.aten._cudnn_rnn(
            x, weights, len(weights) // (layers * dirs), None, hx, cx, mode, H, proj, layers,
            False, 0.0, False, bidirectional, batch_sizes, None,
        )  # fmt: skip
    assert c.total_macs == hand_count(cell, layers, bidirectional, tokens)
    assert c.missing == ()


def test_cudnn_kernel_with_only_the_flat_buffer() -> None:
    # no weight list: the count comes from the configuration alone
    x = torch.empty(T, B, IN, device="meta")
    hx = torch.empty(4, B, H, device="meta")
    from torchscope._flops.rnn import cudnn_rnn_flop

    flops = cudnn_rnn_flop(x, [], 4, None, hx, hx, 2, H, 0, 2, False, 0.0, False, True)
    assert flops == 2 * hand_count("lstm", 2, True, T * B)


def test_miopen_kernel_on_meta() -> None:
    rnn = make("gru", 2, True, False).to("meta")
    weights = list(rnn._flat_weights)
    x = torch.empty(T, B, IN, device="meta")
    hx = torch.empty(4, B, H, device="meta")
    with MacCounter() as c:
        torch.ops.aten.miopen_rnn(x, weights, 4, hx, None, 3, H, 2, False, 0.0, False, True, [], None)
    assert c.total_macs == hand_count("gru", 2, True, T * B)


def test_cells_count_their_two_matmuls() -> None:
    for cls, gates in ((nn.RNNCell, 1), (nn.GRUCell, 3), (nn.LSTMCell, 4)):
        s = torchscope.summary(cls(IN, H), input_size=(B, IN), compare_modes=False)
        assert s.total_mult_adds == B * gates * H * (IN + H), cls.__name__
        assert not s.mult_adds_lower_bound


def test_lstm_language_model_of_the_issue() -> None:
    # 35 timesteps x batch 4; LSTM 200 -> 200, 2 layers; decoder 200 -> 1000 over every token
    model, tokens = build_recurrent("lstm_lm")
    s = torchscope.summary(model, input_data=tokens)
    per_token = 2 * (4 * 200 * (200 + 200)) + 200 * 1000
    assert s.total_mult_adds == 35 * 4 * per_token and not s.mult_adds_lower_bound
    rows = {r.name: r.mult_adds for r in s.rows}
    assert rows["rnn"] == 35 * 4 * 2 * 4 * 200 * 400 and rows["embed"] == 0


def test_packed_gru_encoder_counts_real_timesteps_only() -> None:
    model, (x, lengths) = build_recurrent("packed_gru")
    s = torchscope.summary(model, input_data=(x, lengths))
    real = int(lengths.sum())  # 13 of 21
    layer0 = 2 * 3 * 24 * (16 + 24)
    layer1 = 2 * 3 * 24 * (48 + 24)
    assert s.total_mult_adds == real * (layer0 + layer1) + 3 * 48 * 3


def test_cuda_fused_cells_count_their_matmuls_and_no_more() -> None:
    # on CUDA, nn.LSTMCell/GRUCell compute the gates with two mm and finish in one elementwise
    # kernel (_thnn_fused_*_cell): the kernel has no multiply-accumulates, the mm are counted
    from torchscope._flops import OpKind, classify
    from torchscope._flops.counter import EXTRA_FORMULAS

    aten = torch.ops.aten
    x, h = torch.empty(B, IN, device="meta"), torch.empty(B, H, device="meta")
    w_ih, w_hh = torch.empty(4 * H, IN, device="meta"), torch.empty(4 * H, H, device="meta")
    with MacCounter() as c:
        ig, hg = torch.mm(x, w_ih.t()), torch.mm(h, w_hh.t())
        aten._thnn_fused_lstm_cell(
            ig, hg, h, torch.empty(4 * H, device="meta"), torch.empty(4 * H, device="meta")
        )
    assert c.total_macs == B * 4 * H * (IN + H)
    assert c.kinds["aten._thnn_fused_lstm_cell"] is OpKind.ZERO and c.missing == ()
    # the GRU cell's kernel has no meta implementation to run here; its class is the same
    assert classify(aten._thnn_fused_gru_cell, EXTRA_FORMULAS) is OpKind.ZERO
