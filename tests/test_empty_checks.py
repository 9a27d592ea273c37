"""No empty all-clear: ``activations``, ``stats`` and ``grads`` that had nothing to look at say so and
do not pass (issue 19). The library's reports carry ``status == "not checked"``; the CLI exits 2 with
one line and prints no table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rendering import text
from torch import nn

from torchscope import grad_report, param_stats, record
from torchscope.render.activations import render_activations
from torchscope.render.stats import render_grads, render_param_stats

MODELS = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


class Lazy(nn.Module):
    """Returns a generator: its body (and the layer) runs only when someone iterates it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return (self.fc(t) for t in [x])


class Bare(nn.Module):
    def forward(self, x):
        return x * 2


class Fresh(nn.Module):
    """Its output needs a gradient, but from a tensor made in forward: no parameter gets one."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return x * torch.ones(4, requires_grad=True)
'''


@pytest.fixture
def models(tmp_path: Path) -> str:
    path = tmp_path / "models.py"
    path.write_text(MODELS, encoding="utf-8")
    return str(path)


def _refused(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # no table of dashes, no all-clear
    (line,) = result.stderr.strip().splitlines()
    for needle in needles:
        assert needle in line, line


def test_activations_on_meta_are_not_checked(cli, models: str) -> None:
    result = cli("activations", f"{models}:Net", "--input-size", "2,3,16,16", "--device", "meta")
    _refused(result, "activations checked nothing", "meta device", "--device cpu")


def test_activations_of_a_generator_output_are_not_checked(cli, models: str) -> None:
    result = cli("activations", f"{models}:Lazy", "--input-size", "2,4")
    _refused(result, "activations checked nothing", "returned a generator", "no module ran")


def test_activations_of_a_model_without_submodules_are_not_checked(cli, models: str) -> None:
    _refused(cli("activations", f"{models}:Bare", "--input-size", "2,4"), "no submodules to record")


def test_stats_on_meta_and_of_no_parameters_are_not_checked(cli, models: str) -> None:
    _refused(cli("stats", f"{models}:Net", "--device", "meta"), "stats checked nothing", "meta device")
    _refused(cli("stats", f"{models}:Bare"), "stats checked nothing", "no parameters")


def test_grads_where_no_parameter_got_a_gradient_are_not_checked(cli, models: str) -> None:
    result = cli("grads", f"{models}:Fresh", "--input-size", "2,4")
    _refused(result, "grads checked nothing", "no trainable parameter got a gradient")


def test_a_real_run_is_still_checked(cli, models: str) -> None:
    for command, checked in (("activations", 3), ("grads", 2)):  # outputs of conv, pool, fc; layers conv, fc
        result = cli(command, f"{models}:Net", "--input-size", "2,3,16,16", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["status"] == "ok" and data["checked"] == checked and data["nothing_checked"] == ""
    data = json.loads(cli("stats", f"{models}:Net", "--json").stdout)
    assert data["status"] == "ok" and data["checked"] == 4


def test_record_on_meta_reports_not_checked() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).to("meta")
    with record(model) as rec:
        model(torch.empty(2, 4, device="meta"))
    report = rec.report()
    assert report.status == "not checked" and report.checked == 0 and len(report.calls) == 2
    assert report.to_dict()["status"] == "not checked"
    assert "meta device" in report.to_dict()["nothing_checked"]
    out = text(render_activations(report))
    assert "not checked: the outputs are on the meta device" in out and "no flags" not in out


def test_record_with_no_forward_pass_reports_not_checked() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    with record(model) as rec:
        pass
    report = rec.report()
    assert report.status == "not checked" and report.nothing_checked == "no forward pass ran inside record()"


class _Argmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(-1)


def test_record_counts_the_outputs_it_checked_and_says_which_it_did_not() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), _Argmax())
    with record(model) as rec:
        model(torch.randn(2, 4))
    report = rec.report()
    assert report.status == "ok" and report.checked == 1 and len(report.calls) == 2
    out = text(render_activations(report))
    assert "1 of them without values (integer or meta outputs) not checked" in out and "no flags" in out


def test_param_stats_on_meta_reports_not_checked() -> None:
    stats = param_stats(nn.Linear(3, 2).to("meta"))
    assert stats.status == "not checked" and stats.checked == 0
    assert stats.to_dict()["nothing_checked"].startswith("the parameters are on the meta device")
    assert "not checked: the parameters are on the meta device" in text(render_param_stats(stats))
    assert param_stats(nn.Identity()).nothing_checked == "the model has no parameters"
    real = param_stats(nn.Linear(3, 2))
    assert real.status == "ok" and real.checked == 2 and real.nothing_checked == ""


class _Fresh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.ones(4, requires_grad=True)


def test_grad_report_with_no_gradient_reports_not_checked() -> None:
    report = grad_report(_Fresh(), input_size=(2, 4), loss="sum")
    assert report.status == "not checked" and report.checked == 0 and report.unused == ("fc.weight", "fc.bias")
    assert report.to_dict()["nothing_checked"].startswith("no trainable parameter got a gradient")
    out = text(render_grads(report))
    assert "not checked: no trainable parameter got a gradient" in out
    assert "every trainable parameter got a finite gradient" not in out
