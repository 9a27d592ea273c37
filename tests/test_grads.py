from __future__ import annotations

import json

import pytest
import torch
from rendering import text
from torch import nn
from zoo import build

import torchscope
from torchscope import ForwardError, capture_state, freeze, grad_report
from torchscope.errors import SpecError
from torchscope.render.stats import render_grads


def test_unused_params_and_model_left_as_found() -> None:
    model, x = build("aux_head")
    model.train()
    model.stem.weight.grad = torch.full_like(model.stem.weight, 7.0)  # a grad the user already had
    before = capture_state(model)
    report = grad_report(model, input_data=x)
    assert capture_state(model).differences(before) == []
    d = report.to_dict()
    assert d["unused"] == ["unused.weight", "unused.bias"]
    assert d["loss"] == "cross_entropy" and d["mode"] == "train"
    layers = {la["name"]: la for la in d["layers"]}
    assert layers["unused"]["flag"] == "unused" and layers["unused"]["grad_norm"] is None
    assert layers["aux"]["grad_norm"] > 0  # the aux head's logits are in the loss too
    assert "unused: unused" in d["flags"]


def test_batchnorm_train_mode_statistics_restored() -> None:
    model, _ = build("small_cnn")
    before = capture_state(model)
    report = grad_report(model, input_size=(4, 3, 8, 8))
    assert capture_state(model).differences(before) == []
    assert int(model.backbone[1].num_batches_tracked) == 0
    assert [la.name for la in report.layers] == ["backbone.0", "backbone.1", "backbone.3", "backbone.4", "fc"]
    assert all(la.grad_norm is not None and la.grad_norm > 0 for la in report.layers)
    assert report.unused == () and report.flags == ()


def test_frozen_params_are_not_unused() -> None:
    model, x = build("small_cnn")
    freeze(model, "backbone.0")
    report = grad_report(model, input_data=x)
    assert report.frozen == 8 * 3 * 9 + 8
    assert report.unused == ()
    first = report.layers[0]
    assert (first.name, first.trainable, first.grad_norm) == ("backbone.0", 0, None)


class Branches(nn.Module):
    """Three ordinary layers in a row, and two side branches scaled up and down in the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.a1, self.a2, self.a3 = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.big = nn.Linear(8, 3)
        self.small = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.a3(torch.tanh(self.a2(torch.tanh(self.a1(x)))))
        return main + 1e6 * self.big(x) + 1e-6 * self.small(x)


def test_vanishing_and_exploding_layers_flagged() -> None:
    torch.manual_seed(0)
    report = grad_report(Branches(), input_size=(4, 8), loss="sum")
    flags = {la.name: la.flag for la in report.layers}
    assert flags == {"a1": None, "a2": None, "a3": None, "big": "exploding", "small": "vanishing"}
    assert report.loss == "sum"
    assert [f.split(" (")[0] for f in report.flags] == ["big: exploding", "small: vanishing"]


def test_losses_and_outputs_without_logits() -> None:
    model, x = build("tied")  # (batch, seq, vocab): not (batch, classes) logits, so the sum
    assert grad_report(model, input_data=x).loss == "sum"
    with pytest.raises(SpecError, match=r"loss='ce' needs \(batch, classes\) logits, got shape \[2, 5, 20\]"):
        grad_report(model, input_data=x, loss="ce")
    report = grad_report(model, input_data=x, loss=lambda out: out.pow(2).mean())
    assert report.loss == "<lambda>" and report.loss_value > 0
    with pytest.raises(SpecError, match="loss='l1' must be 'auto', 'ce', 'sum' or a callable"):
        grad_report(model, input_data=x, loss="l1")  # type: ignore[arg-type]


def test_errors() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(5, 2))
    before = capture_state(model)
    with pytest.raises(ForwardError, match=r"forward pass failed in 1 \(Linear\) given \[2, 4\]"):
        grad_report(model, input_size=(2, 8))
    assert capture_state(model).differences(before) == []
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(SpecError, match="no trainable parameters; unfreeze some"):
        grad_report(frozen, input_size=(1, 2))
    with pytest.raises(SpecError, match="meta device"):
        grad_report(nn.Linear(2, 2).to("meta"), input_size=(1, 2))
    assert torchscope.grad_report is grad_report


def test_render() -> None:
    model, x = build("aux_head")
    out = text(render_grads(grad_report(model, input_data=x)))
    lines = out.splitlines()
    assert lines[0].split() == [
        "Layer",
        "(type)",
        "Params",
        "Trainable",
        "Grad",
        "norm",
        "Param",
        "norm",
        "Ratio",
        "Flag",
    ]
    assert lines[4].startswith("unused (Linear)") and lines[4].endswith("unused")
    assert "2 trainable parameters got no gradient (unused): unused.weight, unused.bias" in out


def test_causal_lm_backpropagates_its_own_next_token_loss(cli) -> None:  # type: ignore[no-untyped-def]
    import math

    from hf_tiny import TINY

    config = {**TINY["gpt2"], "attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0}
    model = torchscope.load_model("hf:gpt2", config=config)
    torch.manual_seed(0)
    report = grad_report(model, input_size=(2, 16))
    # the same ids (drawn from the same seed), the loss a user writes
    torch.manual_seed(0)
    ids = torch.randint(0, config["vocab_size"], (2, 16))
    model.train()
    out = model(ids, labels=ids)
    out.loss.backward()
    assert report.loss == "next_token (the model's own)"
    assert report.loss_value == pytest.approx(out.loss.item(), rel=1e-6)
    grads = {n: p.grad for n, p in model.named_parameters()}
    for layer in report.layers:
        own = [g for n, g in grads.items() if n.rpartition(".")[0] == layer.name and g is not None]
        expected = math.sqrt(sum(float(g.norm()) ** 2 for g in own))
        assert layer.grad_norm == pytest.approx(expected, rel=1e-4, abs=1e-9), layer.name
    res = cli("grads", "hf:gpt2", *[f"--config={k}={v}" for k, v in config.items()], "--tokens", "2x16", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["loss"] == "next_token (the model's own)"
    clf = torchscope.load_model(
        "hf:bert", config=TINY["bert"], task="sequence-classification", num_labels=3
    )
    assert grad_report(clf, input_size=(2, 8)).loss == "cross_entropy (the model's own)"
    assert grad_report(model, input_size=(2, 8), loss="sum").loss == "sum"  # forced: as asked
