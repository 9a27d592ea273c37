from __future__ import annotations

import math

import pytest
import torch
from rendering import text
from torch import nn
from zoo import Scale, build

import torchscope
from torchscope import capture_state, record
from torchscope.errors import PatternError
from torchscope.render.activations import render_activations


def test_stats_match_torch_and_order_is_call_order() -> None:
    model, x = build("small_cnn")
    with record(model) as rec:
        out = model(x)
    d = rec.report().to_dict()
    assert d["forwards"] == 1
    assert [c["module"] for c in d["calls"]] == [
        "backbone.0", "backbone.1", "backbone.2", "backbone.3", "backbone.4", "backbone.5",
        "backbone.6", "backbone.7", "backbone", "fc",
    ]  # fmt: skip
    fc = d["calls"][-1]
    assert fc["shape"] == [4, 3] and fc["dtype"] == "float32" and fc["type"] == "Linear"
    expected = {
        "mean": out.mean().item(),
        "std": out.std().item(),
        "min": out.min().item(),
        "max": out.max().item(),
        "absmax": out.abs().max().item(),
        "zero_fraction": 0.0,
        "nan_count": 0,
        "inf_count": 0,
    }
    assert fc["stats"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    relu = d["calls"][2]["stats"]
    assert relu["min"] == 0.0 and 0.2 < relu["zero_fraction"] < 0.8


def test_hooks_removed_and_model_unchanged_also_when_forward_raises() -> None:
    model, x = build("small_cnn")
    model.eval()  # the model's own train-mode forward would move its BatchNorm statistics
    before = capture_state(model)
    with pytest.raises(RuntimeError, match="channels"), record(model, grads=True, timing=True):
        model(torch.randn(2, 5, 8, 8))
    assert capture_state(model).differences(before) == []
    with record(model):
        model(x)
    assert capture_state(model).differences(before) == []


def test_shared_module_records_every_call() -> None:
    model, x = build("shared_child")
    with record(model, "block") as rec:
        model(x)
    calls = [(c.module, c.call) for c in rec.report().calls]
    assert calls == [("block", 0), ("block", 1)]


def test_one_host_transfer_per_forward_and_no_item(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = build("small_cnn")
    transfers = []
    original = torch.Tensor.tolist

    def counting_tolist(self: torch.Tensor):  # type: ignore[no-untyped-def]
        transfers.append(tuple(self.shape))
        return original(self)

    def no_item(self: torch.Tensor):  # type: ignore[no-untyped-def]
        raise AssertionError("item() called inside record()")

    with record(model) as rec:
        monkeypatch.setattr(torch.Tensor, "tolist", counting_tolist)
        monkeypatch.setattr(torch.Tensor, "item", no_item)
        model(x)
        model(x)
        monkeypatch.undo()
    assert transfers == [(10, 8), (10, 8)]  # one stack of 10 calls x 8 statistics per forward pass
    assert rec.report().forwards == 2


def test_dead_relu_nan_and_exploding_flags() -> None:
    torch.manual_seed(0)
    dead = nn.Linear(4, 4)
    with torch.no_grad():
        dead.bias.fill_(-100.0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), dead, nn.ReLU(), nn.Linear(4, 4), Scale(1e6))
    with record(model) as rec:
        model(torch.randn(16, 4))
    report = rec.report()
    kinds = {(f.kind, f.module) for f in report.flags}
    assert ("dead", "3") in kinds
    assert ("exploding", "5") in kinds
    assert report.calls[3].flags == ("dead",)

    nan_model = nn.Sequential(nn.Linear(4, 4), Scale(float("nan")))
    with record(nan_model) as rec:
        nan_model(torch.randn(2, 4))
    flags = rec.report().to_dict()["flags"]
    assert flags == [
        {"kind": "nan", "module": "1", "forward": 0, "call": 0, "detail": "8 NaN values in output"}
    ]
    assert rec.report().calls[1].stats.nan_count == 8  # type: ignore[union-attr]


def test_output_gradient_stats_and_timing() -> None:
    model, x = build("multi_output")
    before = capture_state(model)
    with record(model, ["body", "cls"], grads=True, timing=True) as rec:
        out = model(x)
        out.logits.sum().backward()
    calls = rec.report().calls
    assert [(c.module, c.output) for c in calls] == [("body", "output"), ("cls", "output")]
    assert calls[1].grad is not None and calls[1].grad.mean == 1.0 and calls[1].grad.std == 0.0
    assert calls[0].grad is not None and calls[0].grad.absmax > 0
    assert all(c.time_ms is not None and c.time_ms >= 0 for c in calls)
    model.zero_grad(set_to_none=True)
    assert capture_state(model).differences(before) == []


def test_pattern_that_matches_nothing() -> None:
    model, _ = build("small_cnn")
    with pytest.raises(
        PatternError, match="pattern 'layer9' matches no module; list names with `torchscope tree`"
    ):
        with record(model, "layer9"):
            pass


def test_multiple_outputs_each_recorded() -> None:
    model, x = build("dict_input")
    with record(model, "txt") as rec:
        model(x)
    (call,) = rec.report().calls
    assert call.shape == (2, 3, 4)
    assert torchscope.ActivationReport is type(rec.report())


def test_render_highlights_flags() -> None:
    model = nn.Sequential(nn.Linear(2, 2), Scale(float("inf")))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(0.0)
    with record(model) as rec:
        model(torch.ones(1, 2))
    out = text(render_activations(rec.report()))
    assert out.splitlines() == [
        "Module  Type    Shape   Mean  Std  Min  Max  Zeros  NaN/Inf  Flags",
        "─" * 66,
        "0       Linear  [1, 2]     2    0    2    2     0%        -",
        "1       Scale   [1, 2]   inf  nan  inf  inf     0%      0/2  inf",
        "2 recorded outputs over 1 forward pass",
        "inf: 1 - 2 Inf values in output",
    ]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_model_is_refused() -> None:
    scripted = torch.jit.script(nn.Linear(2, 2))
    with pytest.raises(torchscope.SpecError, match="record\\(\\) cannot hook a TorchScript module"):
        with record(scripted):
            pass


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cpu_fast_paths_agree_with_plain_torch(dtype: torch.dtype) -> None:
    from torchscope._record import _SIGN_CHUNK, tensor_stats

    torch.manual_seed(0)
    # larger than one sign chunk, with exact zeros (both signs), and a non-contiguous view
    x = torch.randn(_SIGN_CHUNK + 12345, dtype=torch.float64).relu()
    x[:100] = -0.0
    x = x.to(dtype)
    for t in (x, x.view(-1, 5)[:, :3] if x.numel() % 5 == 0 else x[::2]):
        got = tensor_stats(t).tolist()
        ref = t.double()
        want = [
            ref.mean().item(),
            ref.std().item(),
            ref.min().item(),
            ref.max().item(),
            ref.abs().max().item(),
            1 - torch.count_nonzero(ref).item() / ref.numel(),
            0.0,
            0.0,
        ]
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_huge_finite_values_keep_a_finite_std() -> None:
    from torchscope._record import tensor_stats

    x = torch.tensor([1e20, -1e20, 3e20], dtype=torch.float32)  # squares overflow float32
    _mean, std, *_rest, nan, inf = tensor_stats(x).tolist()
    assert math.isfinite(std) and std == pytest.approx(x.double().std().item(), rel=1e-5)
    assert (nan, inf) == (0.0, 0.0)
