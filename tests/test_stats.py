from __future__ import annotations

import math

import pytest
import torch
from rendering import text
from torch import nn
from zoo import build

import torchscope
from torchscope import capture_state, param_stats, update_ratio
from torchscope.errors import SpecError
from torchscope.render.stats import render_param_stats


def test_values_match_torch_and_tied_params_appear_once() -> None:
    model, _ = build("tied")
    d = param_stats(model).to_dict()
    assert [(r["name"], r["aliases"]) for r in d["rows"]] == [
        ("embed.weight", ["out.weight"]),
        ("proj.weight", []),
        ("proj.bias", []),
    ]
    w = model.embed.weight.detach()
    row = d["rows"][0]
    expected = {
        "norm": w.norm().item(),
        "mean": w.mean().item(),
        "std": w.std().item(),
        "min": w.min().item(),
        "max": w.max().item(),
    }
    assert {k: row[k] for k in expected} == pytest.approx(expected, rel=1e-5)
    assert row["shape"] == [20, 8] and row["numel"] == 160 and row["zero_fraction"] == 0.0
    assert row["grad"] == "none" and row["grad_norm"] is None
    assert d["total"] == 160 + 64 + 8 and d["grad_norm"] is None
    assert d["norm"] == pytest.approx(
        math.sqrt(sum(p.detach().norm().item() ** 2 for p in model.parameters())), rel=1e-6
    )


def test_grad_states_ratio_and_flags() -> None:
    model, x = build("aux_head")
    model.stem.weight.requires_grad_(False)
    out = model(x)
    (out.logits.sum() + out.features.sum()).backward()
    with torch.no_grad():
        model.fc.bias.grad.zero_()  # type: ignore[union-attr]
        model.aux.bias.grad.fill_(float("nan"))  # type: ignore[union-attr]
        model.fc.weight[0, 0] = float("inf")
    before = capture_state(model)
    stats = param_stats(model)
    assert capture_state(model).differences(before) == []
    rows = {r.name: r for r in stats.rows}
    assert rows["stem.weight"].grad == "none" and not rows["stem.weight"].requires_grad
    assert rows["unused.weight"].grad == "none"
    assert rows["fc.bias"].grad == "zero" and rows["fc.bias"].grad_norm == 0.0
    assert rows["aux.bias"].grad == "nonfinite"
    aux_w = rows["aux.weight"]
    assert aux_w.grad == "ok"
    assert aux_w.grad_ratio == pytest.approx(
        model.aux.weight.grad.norm().item() / model.aux.weight.norm().item(), rel=1e-5
    )  # type: ignore[union-attr]
    assert rows["fc.weight"].inf_count == 1
    assert stats.flags == ("aux.bias: gradient is not finite", "fc.weight: 0 NaN, 1 Inf values")
    assert stats.frozen == 64 and stats.trainable == stats.total - 64


def test_one_host_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = build("small_cnn")
    model(x).sum().backward()
    calls = []
    original = torch.Tensor.tolist

    def counting(self: torch.Tensor):  # type: ignore[no-untyped-def]
        calls.append(self.shape)
        return original(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    param_stats(model)
    assert len(calls) == 1


def test_meta_model_has_shapes_but_no_values() -> None:
    model = nn.Linear(3, 2).to("meta")
    (row, _) = param_stats(model).rows
    assert row.shape == (2, 3) and row.norm is None and row.mean is None and row.grad == "none"


def test_update_ratio() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model.weight.add_(1e-3 * model.weight)
    ratios = update_ratio(before, model)
    assert ratios["weight"] == pytest.approx(1e-3, rel=1e-3) and ratios["bias"] == 0.0
    after = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert update_ratio(before, after) == ratios
    assert update_ratio({"bias": torch.zeros(4)}, {"bias": torch.ones(4)}) == {"bias": math.inf}
    with pytest.raises(SpecError, match="no parameter names in common"):
        update_ratio({"x": torch.zeros(1)}, model)
    assert torchscope.update_ratio is update_ratio


def test_render_exact() -> None:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, 4.0]]))
        model.bias.zero_()
    model.bias.requires_grad_(False)
    out = text(render_param_stats(param_stats(model)))
    assert out.splitlines() == [
        "Parameter   Shape    Train   Norm   Mean     Std   Min   Max   Zeros   Grad   Grad/param",
        "─" * 88,
        "weight      [1, 2]     ✓        5    3.5   0.707     3     4      0%   none            -",
        "bias        [1]        ✗        0      0       0     0     0    100%   none            -",
        "Params: 3 (2 trainable, 1 frozen)",
        "Global norm: 5; grad norm: -",
    ]
