"""An input dtype the first layer cannot take is the same one line on meta as on a real device.

Meta kernels skip some dtype checks (a float16 batch into a float32 Conv or Linear, int64 into a
Linear), so ``summary --dtype fp16`` gave a full table on meta and failed on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from zoo import SmallCNN, TiedLM

import torchscope
from torchscope._inputs import InputDtypeError

ZOO_PY = str(Path(__file__).parent / "zoo.py")


class CastsItsInput(nn.Module):
    """Casts the batch itself before its first layer: any float dtype is fine."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.float())


class OwnLayer(nn.Linear):
    """A user's layer (defined outside torch) may cast its inputs: it is not judged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype))


CASES = [
    (SmallCNN, (2, 3, 8, 8), torch.float16, r"input\[0\] is float16 but backbone\.0 \(Conv2d\) has float32 weights"),
    (lambda: nn.Sequential(nn.Linear(4, 2)), (2, 4), torch.bfloat16, r"is bfloat16 but 0 \(Linear\) has float32"),
    (lambda: nn.Sequential(nn.Linear(4, 2)), (2, 4), torch.int64, r"is int64 but 0 \(Linear\) .*give float inputs"),
    (TiedLM, (2, 5), torch.float32, r"is float32 but embed \(Embedding\) takes integer indices: give token ids"),
]


def _on(device: str, build) -> nn.Module:
    torch.manual_seed(0)
    return build().to(device)


@pytest.mark.parametrize(("build", "size", "dtype", "message"), CASES)
def test_the_meta_run_rejects_what_the_real_run_rejects_with_the_same_line(build, size, dtype, message) -> None:
    said = []
    for device in ("meta", "cpu"):
        with pytest.raises(InputDtypeError, match=message) as info:
            torchscope.summary(_on(device, build), input_size=size, dtypes=[dtype])
        said.append(str(info.value))
    assert said[0] == said[1]


@pytest.mark.parametrize(("build", "size", "dtype", "message"), CASES)
def test_grads_and_record_say_the_same(build, size, dtype, message) -> None:
    model = _on("cpu", build)
    with pytest.raises(torchscope.ForwardError, match=message):
        torchscope.grad_report(model, input_size=size, dtype=dtype, loss="sum")


@pytest.mark.parametrize(
    ("build", "size", "dtype"),
    [
        (lambda: SmallCNN().half(), (2, 3, 8, 8), torch.float16),  # the model's own dtype
        (CastsItsInput, (2, 4), torch.float16),
        (lambda: nn.Sequential(OwnLayer(4, 2)), (2, 4), torch.float64),
        (TiedLM, (2, 5), torch.int32),
    ],
)
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_inputs_the_model_takes_still_run(build, size, dtype, device: str) -> None:
    s = torchscope.summary(_on(device, build), input_size=size, dtypes=[dtype])
    assert s.total_mult_adds and s.inputs[0].dtype == str(dtype).removeprefix("torch.")


def test_autocast_takes_another_float_dtype() -> None:
    model = _on("cpu", SmallCNN)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = torchscope.summary(model, input_size=(2, 3, 8, 8), dtypes=[torch.bfloat16])
    assert s.outputs[0].shape == (2, 3)


@pytest.mark.parametrize("command", ["summary", "activations", "grads", "report"])
def test_cli_fp16_into_an_fp32_model_is_the_same_line_on_meta_and_cpu(cli, command: str) -> None:
    lines = []
    devices = ["meta", "cpu"] if command == "summary" else ["cpu"]
    for device in devices:
        extra = ["--device", device] if command != "report" else []
        result = cli(command, f"{ZOO_PY}:SmallCNN", "--input-size", "2,3,8,8", "--dtype", "fp16", *extra)
        assert result.exit_code == 2, result.output
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
        lines.append(result.stderr)
    assert lines[0].startswith(
        "error: input[0] is float16 but backbone.0 (Conv2d) has float32 weights: give float32 inputs (--dtype float32)"
    )
    assert len(set(lines)) == 1
