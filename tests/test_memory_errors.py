"""``memory``'s errors name the real cause, and ``--fit`` answers in real numbers (issue 19).

Fake tensors are blamed only when an op really cannot run on them; a model that fails on its input
is diagnosed as ``summary`` diagnoses it (the module that was running, the shape it got). One
meaning of ``--input-size``: one sample's shape with ``--batch-size`` or ``--fit``, the whole batch
otherwise. ``--fit`` at its search limit says every batch up to the limit fits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import torchscope
from torchscope._memory.cards import MARGIN
from torchscope._memory.fit import MAX_BATCH
from torchscope.errors import TorchscopeError

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


class ReturnsInt(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        self.fc(x)
        return 3


class Picky(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        if y.shape[0] > 1:
            raise ValueError("Picky takes one row at a time")
        return y


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return y[y > 0].sum()


class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return y if y.sum() > 0 else -y


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
'''


@pytest.fixture
def models(tmp_path: Path) -> str:
    path = tmp_path / "models.py"
    path.write_text(MODELS, encoding="utf-8")
    return str(path)


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # a failed run prints no numbers
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_readme_example_a_sample_shape_with_batch_size_and_fit(cli, models: str) -> None:
    result = cli("memory", f"{models}:Net", "--batch-size", "4", "--input-size", "3,32,32", "--fit", "t4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["inputs"] == [[4, 3, 32, 32]] and data["fit"]["batch_size"] > 4


def test_a_sample_shape_with_fit_alone_is_one_sample(cli, models: str) -> None:
    result = cli("memory", f"{models}:Net", "--input-size", "3,32,32", "--fit", "t4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["inputs"] == [[1, 3, 32, 32]]  # the report at batch 1, the search from there
    assert data["fit"]["batch_size"] > 1 and data["fit"]["peak"] > 0


def test_a_whole_batch_shape_with_batch_size_is_the_models_error_and_says_how_it_was_read(cli, models: str) -> None:
    line = _one_line(cli("memory", f"{models}:Net", "--batch-size", "4", "--input-size", "4,3,32,32"))
    assert "conv (Conv2d) given [4, 4, 3, 32, 32]" in line
    assert "one sample's shape" in line and "leave the batch dimension out" in line
    assert "fake" not in line


def test_a_sample_shape_without_batch_size_is_the_whole_batch_and_the_error_says_so(cli, models: str) -> None:
    line = _one_line(cli("memory", f"{models}:Net", "--input-size", "3,32,32"))
    assert "forward pass failed in fc (Linear) given [8, 1]" in line and "ran before it: conv, pool" in line
    assert "is the whole batch" in line and "fake" not in line


def test_integer_inputs_into_a_float_layer_are_the_inputs_fault(cli, models: str) -> None:
    line = _one_line(cli("memory", f"{models}:Net", "--input-size", "2,3,32,32", "--dtype", "int64"))
    assert "input[0] is int64 but conv (Conv2d) has float32 weights" in line and "fake" not in line
    assert "--dtype float32" in line  # the fix


def test_a_model_returning_an_int_is_named_as_such(cli, models: str) -> None:
    line = _one_line(cli("memory", f"{models}:ReturnsInt", "--input-size", "2,4"))
    assert "returned int (3) with no tensor to take a loss of" in line and "fake" not in line
    result = cli("memory", f"{models}:ReturnsInt", "--input-size", "2,4", "--mode", "eval")
    assert result.exit_code == 0, result.output  # inference needs no loss


def test_an_exception_of_the_models_own_code_names_the_module_and_shape(cli, models: str) -> None:
    line = _one_line(cli("memory", f"{models}:Picky", "--input-size", "2,4"))
    assert "forward pass failed in the model (Picky) given [2, 4]" in line
    assert "ValueError: Picky takes one row at a time" in line and "fake" not in line


@pytest.mark.parametrize("amp", ["off", "bf16"])  # meta tensors, fake CPU tensors
@pytest.mark.parametrize("name", ["Masked", "Scalar"])
def test_value_dependent_code_is_the_one_limit_of_fake_tensors(cli, models: str, name: str, amp: str) -> None:
    line = _one_line(cli("memory", f"{models}:{name}", "--input-size", "2,4", "--amp", amp))
    assert f"in module '{name}' cannot run under fake tensors" in line
    assert "depends on tensor values" in line and "register_fake" not in line


@pytest.mark.parametrize(
    ("fit", "message"),
    [
        ("24", "--fit '24' has no unit; write 24GiB (binary), 24GB (decimal) or 24B (bytes)"),
        ("-1GiB", "--fit '-1GiB' must be a positive size"),
        ("0GB", "--fit '0GB' must be a positive size"),
        ("", "--fit '' is not a size or a known GPU"),
        ("t5", "--fit 't5' is not a size or a known GPU"),
    ],
)
def test_fit_values_that_are_not_a_size(cli, models: str, fit: str, message: str) -> None:
    assert message in _one_line(cli("memory", f"{models}:Tiny", "--input-size", "2,4", "--fit", fit))


def test_library_fit_bytes_must_be_positive() -> None:
    model = nn.Linear(4, 2)
    for bad in (0, -5, True, 2.5):
        with pytest.raises(TorchscopeError, match=r"fit=.* must be"):
            torchscope.estimate_memory(model, (2, 4), fit=bad)  # type: ignore[arg-type]


def test_fit_at_the_search_limit_says_every_batch_fits_with_the_peak_there(cli, models: str) -> None:
    result = cli("memory", f"{models}:Tiny", "--input-size", "4", "--fit", "24GiB", "--no-color")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"every batch size up to the search limit {MAX_BATCH:,} fits; peak at {MAX_BATCH:,}:" in text
    assert "peak 0 B" not in text and "largest batch size" not in text
    fit = json.loads(cli("memory", f"{models}:Tiny", "--input-size", "4", "--fit", "24GiB", "--json").stdout)["fit"]
    assert fit["at_limit"] is True and fit["batch_size"] == fit["search_limit"] == MAX_BATCH
    torch.manual_seed(0)
    assert fit["peak"] == torchscope.estimate_memory(nn.Linear(4, 2), (MAX_BATCH, 4)).peak > 0


def test_fit_answer_of_batch_one_has_its_real_peak() -> None:
    model = nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 8))
    one = torchscope.estimate_memory(model, (1, 4096)).peak
    two = torchscope.estimate_memory(model, (2, 4096)).peak
    usable = (one + two) // 2
    capacity = MARGIN.context_bytes + int(usable / (1 - MARGIN.fragmentation)) + 1
    fit = torchscope.estimate_memory(model, (2, 4096), fit=capacity).fit
    assert fit is not None and fit.batch_size == 1 and not fit.at_limit
    assert fit.peak == one <= fit.usable < two == fit.next_peak


def test_fit_search_stops_where_a_tensor_could_not_be_sized() -> None:
    # one sample of 2^40 values: a batch above 2^63 / 16 / 2^40 = 2^19 could not be sized at all
    fit = torchscope.estimate_memory(nn.Linear(4, 2), (2, 2**38, 4), fit=2**70).fit
    assert fit is not None and fit.at_limit and fit.search_limit == 2**19 - 1 == fit.batch_size
    assert fit.peak > 2**19 * 2**40 * 4  # at least the batch itself, in fp32


def test_huge_batch_size_and_steps_are_one_line(cli, models: str) -> None:
    big = "9" * 30
    line = _one_line(cli("memory", f"{models}:Tiny", "--batch-size", big, "--input-size", "4"))
    assert "more than a tensor can hold" in line
    line = _one_line(cli("memory", f"{models}:Tiny", "--input-size", "2,4", "--steps", big))
    assert "must be between 1 and 100" in line


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        raise ValueError("no backward written yet")


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _NoBackward.apply(self.fc(x))


def test_a_failing_backward_is_named_as_the_backward() -> None:
    with pytest.raises(TorchscopeError, match=r"^cannot predict memory: the backward failed .*ValueError: no backward written yet"):
        torchscope.estimate_memory(_Twice(), (2, 4))
