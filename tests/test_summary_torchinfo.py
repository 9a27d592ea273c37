"""torchscope.summary as a drop-in for torchinfo.summary: its keywords with its meaning, the same
parameters and shapes, and MACs that differ only where we mean to (torchinfo adds one per bias add
and counts norm layers; we count multiply-accumulates)."""

from __future__ import annotations

import math

import pytest
import torch
import torchinfo
import torchvision
from rendering import text
from torch import nn
from zoo import build, build_recurrent

import torchscope
from torchscope import SpecError, TorchscopeError
from torchscope.render.summary import render_summary

COMPARED = {
    "resnet18": lambda: (torchvision.models.resnet18(), (1, 3, 64, 64)),
    "mobilenet_v2": lambda: (torchvision.models.mobilenet_v2(), (2, 3, 64, 64)),
    "small_cnn": lambda: (build("small_cnn")[0], (4, 3, 8, 8)),
    "stacked": lambda: (build("stacked")[0], (2, 8)),
}


def _bias_adds(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    # what torchinfo adds to a conv or linear layer's count: one add per output element with a bias
    if getattr(module, "bias", None) is None:
        return 0
    return math.prod(out_shape)


@pytest.mark.parametrize("name", sorted(COMPARED))
def test_params_shapes_and_macs_agree_with_torchinfo(name: str) -> None:
    model, size = COMPARED[name]()
    theirs = torchinfo.summary(model, input_size=size, verbose=0)
    ours = torchscope.summary(model, input_size=size)
    assert ours.total_params == theirs.total_params
    assert ours.trainable_params == theirs.trainable_params
    # torchinfo's summary_list and our rows are the same module calls in the same order
    assert [r.type for r in ours.rows] == [layer.class_name for layer in theirs.summary_list]
    assert [list(r.outputs[0].shape) for r in ours.rows if len(r.outputs) == 1] == [
        layer.output_size for layer, r in zip(theirs.summary_list, ours.rows, strict=True) if len(r.outputs) == 1
    ]
    modules = dict(model.named_modules())
    compared = 0
    for row, layer in zip(ours.rows, theirs.summary_list, strict=True):
        if row.type in ("Conv2d", "Linear"):
            bias = _bias_adds(modules[row.name], row.outputs[0].shape)
            assert row.mult_adds is not None and row.mult_adds + bias == layer.macs, row.name
            compared += 1
    assert compared >= 3


def test_an_lstm_agrees_with_torchinfo() -> None:
    model, tokens = build_recurrent("lstm_lm")
    theirs = torchinfo.summary(model, input_data=[tokens], verbose=0)
    ours = torchscope.summary(model, input_data=[tokens])
    assert ours.total_params == theirs.total_params
    assert [list(r.outputs[0].shape) for r in ours.rows] == [layer.output_size for layer in theirs.summary_list]
    # torchinfo counts the LSTM's weights once per timestep of the batch too
    lstm = next(layer for layer in theirs.summary_list if layer.class_name == "LSTM")
    rnn = next(r for r in ours.rows if r.name == "rnn")
    biases = sum(p.numel() for n, p in model.rnn.named_parameters() if "bias" in n)
    assert rnn.mult_adds is not None and rnn.mult_adds + 35 * 4 * biases == lstm.macs


def test_the_same_call_works_with_both() -> None:
    model, size = COMPARED["small_cnn"]()
    kwargs = dict(
        input_size=size, col_names=("input_size", "output_size", "num_params", "params_percent", "kernel_size",
                                    "mult_adds", "trainable"),
        col_width=16, depth=1, row_settings=("depth", "var_names"), mode="eval", device="cpu", verbose=0,
    )  # fmt: skip
    theirs = torchinfo.summary(model, **kwargs)
    ours = torchscope.summary(model, **kwargs)
    assert ours.total_params == theirs.total_params
    out = str(ours)
    header = out.splitlines()[0]
    for column in ("Input shape", "Output shape", "Params", "Params %", "Kernel", "Mult-adds", "Trainable"):
        assert column in header
    assert "backbone (Sequential): 1-1" in out and "fc (Linear): 1-2" in out
    assert "0 (Conv2d)" not in out  # depth=1
    assert "100.00%" in out and "True" in out


def test_input_size_with_batch_dim_and_dtypes() -> None:
    model, _ = build("small_cnn")
    s = torchscope.summary(model, input_size=(3, 8, 8), batch_dim=0)
    assert s.inputs[0].shape == (1, 3, 8, 8)
    emb = build("tied")[0]
    for dtype in (torch.long, torch.LongTensor, torch.cuda.LongTensor, "int64"):
        s = torchscope.summary(emb, input_size=(2, 5), dtypes=[dtype])
        assert s.inputs[0].dtype == "int64" and s.outputs[0].shape == (2, 5, 20)
    s = torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), dtypes=[torch.FloatTensor])
    assert s.inputs[0].dtype == "float32"


@pytest.mark.parametrize(
    ("dtypes", "message"),
    [
        ([5], r"^dtypes has 5, which is not a dtype; use e\.g\. torch\.float32, 'int64' or torch\.LongTensor$"),
        ([nn.Linear], r"^dtypes has <class 'torch\.nn\.modules\.linear\.Linear'>, which is not a dtype"),
        (["float8"], r"^unknown dtype 'float8'"),
    ],
)
def test_a_bad_dtypes_value_is_our_error(dtypes: list, message: str) -> None:
    with pytest.raises(TorchscopeError, match=message) as info:
        torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), dtypes=dtypes)
    assert "\n" not in str(info.value)


def test_input_data_list_is_positional_arguments() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(5, 4)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.a(x) + self.b(y)

    x, y = torch.randn(2, 3), torch.randn(2, 5)
    ours = torchscope.summary(Two(), input_data=[x, y])
    theirs = torchinfo.summary(Two(), input_data=[x, y], verbose=0)
    assert [t.shape for t in ours.inputs] == [(2, 3), (2, 5)]
    assert ours.total_mult_adds == 2 * 3 * 4 + 2 * 5 * 4
    assert ours.total_params == theirs.total_params


def test_no_input_gives_the_parameter_table_without_a_forward_pass() -> None:
    calls = []
    model = torchvision.models.resnet18()
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    ours = torchscope.summary(model)
    theirs = torchinfo.summary(model, verbose=0)
    assert calls == [] and ours.total_mult_adds is None and not ours.forward_ran
    assert ours.total_params == theirs.total_params == 11_689_512
    assert [r.name for r in ours.rows][:3] == ["", "conv1", "bn1"]
    out = text(render_summary(ours))
    assert out.splitlines()[0].split() == ["Layer", "(type)", "Params"]
    assert "Mult-adds" not in out and "no input given: parameters only" in out
    assert ours.to_dict()["total_mult_adds"] is None


@pytest.mark.parametrize("size", [(), [()], [(), (3,)]])
def test_zero_dimensional_inputs(size) -> None:
    class Scalars(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, t: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
            return self.w * t if v is None else self.w * t + v

    s = torchscope.summary(Scalars(), input_size=size)
    assert s.inputs[0].shape == () and s.outputs[0].shape == (3,)


def test_mode_same_keeps_the_models_mode() -> None:
    model, _ = build("aux_head")
    model.train()
    assert torchscope.summary(model, input_size=(4, 8), mode="same").mode == "train"
    model.eval()
    assert torchscope.summary(model, input_size=(4, 8), mode="same").mode == "eval"
    assert torchscope.summary(model, input_size=(4, 8)).mode == "eval"  # torchinfo's default too


def test_verbose_follows_torchinfo_rule(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # not interactive (a script, pytest): verbose=None prints, as torchinfo
    monkeypatch.delattr("sys.ps1", raising=False)
    s = torchscope.summary(nn.Linear(3, 2), input_size=(2, 3))
    assert capsys.readouterr().out == str(s) + "\n"
    torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), verbose=0)
    assert capsys.readouterr().out == ""
    # interactive (the REPL): quiet unless verbose is given
    monkeypatch.setattr("sys.ps1", ">>> ", raising=False)
    torchscope.summary(nn.Linear(3, 2), input_size=(2, 3))
    assert capsys.readouterr().out == ""
    torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), verbose=1)
    assert "FLOPs: 24 (mult-adds: 12)" in capsys.readouterr().out


def test_cache_forward_pass_reuses_the_collected_summary() -> None:
    calls = []
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    first = torchscope.summary(model, input_size=(2, 3), cache_forward_pass=True, compare_modes=False)
    again = torchscope.summary(model, input_size=(2, 3), cache_forward_pass=True, compare_modes=False, depth=0)
    assert len(calls) == 1 and again == first
    assert "0 (Linear)" in str(first) and "0 (Linear)" not in str(again)
    torchscope.summary(model, input_size=(5, 3), cache_forward_pass=True, compare_modes=False)
    assert len(calls) == 2  # another input shape is another summary


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"col_names": ["output_size", "flops"]}, "col_names has 'flops'; use any of input_size, output_size"),
        ({"row_settings": ["tree"]}, "row_settings has 'tree'; use any of depth, var_names"),
        ({"col_width": 0}, "col_width=0 must be a positive int"),
        ({"depth": -1}, "depth=-1 must be an int >= 0"),
        ({"verbose": 3}, "verbose=3 must be 0, 1 or 2"),
        ({"batch_dim": 9}, r"batch_dim=9 is out of range for input_size \(2, 3\)"),
        ({"mode": "test"}, "mode='test' must be 'eval', 'train' or 'same'"),
    ],
)
def test_bad_torchinfo_keywords(kwargs: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        torchscope.summary(nn.Linear(3, 2), input_size=(2, 3), **kwargs)
