"""--fit: the largest batch size that fits, byte sizes and GPU names, the margin, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from zoo import SmallCNN

import torchscope
from torchscope._memory.cards import GPUS, MARGIN, capacity_of
from torchscope._parsing import parse_bytes
from torchscope.errors import TorchscopeError


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return SmallCNN(num_classes=5)


def test_fit_answer_fits_and_the_next_batch_does_not() -> None:
    model = _cnn()
    report = torchscope.estimate_memory(model, (4, 3, 64, 64), fit="2GiB")
    fit = report.fit
    assert fit is not None and fit.usable == MARGIN.usable(2 * 2**30) == int(2**30 * 0.9)
    b = fit.batch_size
    assert b > 100
    at_b = torchscope.estimate_memory(model, (b, 3, 64, 64)).peak
    above = torchscope.estimate_memory(model, (b + 1, 3, 64, 64)).peak
    assert at_b == fit.peak <= fit.usable < above == fit.next_peak
    assert fit.traces <= 4  # two traces to fit the line, two to confirm the answer


def test_fit_when_the_weights_alone_do_not_fit() -> None:
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(16384, 16384), torch.nn.Linear(16384, 10))  # 1 GiB fp32
    fit = torchscope.estimate_memory(model, (2, 16384), fit="t4").fit
    assert fit is not None and fit.batch_size > 0 and fit.reason == ""  # 1 GiB of weights fits a T4
    fit = torchscope.estimate_memory(model, (2, 16384), fit="1.5GiB").fit
    assert fit is not None and fit.batch_size == 0 and fit.reason == "the weights alone do not fit"
    assert fit.weights == 2**30 + 16384 * 4 + 16384 * 10 * 4 + 512  # the 40-byte bias takes a 512-byte block
    assert fit.usable < fit.weights


def test_sizes_and_gpu_names() -> None:
    assert parse_bytes("24GiB") == 24 * 2**30
    assert parse_bytes("40GB") == 40 * 10**9
    assert parse_bytes("512m") == 512 * 2**20
    assert capacity_of("A100-80GB")[0] == GPUS["a100-80gb"][0] * 2**20
    assert capacity_of("h100")[1].startswith("h100 (NVIDIA H100")
    for bad in ("24 parsecs", "", "-3GiB", "zero"):
        with pytest.raises(
            TorchscopeError, match=r"--fit .* (is not a size or a known GPU|must be a positive)"
        ):
            capacity_of(bad)


def test_cli_memory_json_and_fit(cli) -> None:
    result = cli("memory", "resnet18", "-b", "2", "--input-size", "3,32,32", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["inputs"] == [[2, 3, 32, 32]] and data["peak"] > 4 * 11_689_512
    assert data["phase"] == "optimizer"  # resnet18 at this batch peaks in AdamW's first step (its state appears)
    result = cli("memory", "resnet18", "-b", "2", "--input-size", "3,32,32", "--fit", "1GiB")
    assert result.exit_code == 1
    assert "does not fit 1GiB: the weights alone need" in result.stdout


def test_cli_memory_text_and_bad_input(cli) -> None:
    result = cli("memory", "resnet18", "-b", "2", "--input-size", "3,32,32", "--freeze-backbone",
                 "--optimizer", "sgd", "--no-color")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Predicted peak:" in result.stdout and "alive at the peak" in result.stdout
    assert "512-byte blocks" in result.stdout
    result = cli("memory", "resnet18", "--fit", "lots")
    assert result.exit_code == 2
    assert "--fit 'lots' is not a size or a known GPU" in result.stderr
    result = cli("memory", "resnet18", "--amp", "fp8")
    assert result.exit_code == 2 and "--amp 'fp8' is not one of off, bf16, fp16" in result.stderr


def test_cli_model_that_cannot_run_fake_is_exit_2_and_one_line(cli, tmp_path) -> None:
    path = tmp_path / "net.py"
    path.write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body = torch.nn.Linear(4, 4)\n"
        "    def forward(self, x):\n"
        "        y = self.body(x)\n"
        "        return y[y > 0]\n"
    )
    result = cli("memory", f"{path}:Net", "--input-size", "2,4")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "in module 'Net'" in lines[0] and "no number is given" in lines[0]
    assert "Predicted peak" not in result.stdout
