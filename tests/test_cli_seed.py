"""Repeatable (issue 19): every command that draws random weights or inputs takes ``--seed`` (default
0) and seeds before the model is built, so two runs print the same ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from torchscope.errors import TorchscopeError

CliRun = Callable[..., Result]  # the `cli` fixture of conftest

NET = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.bn(self.fc1(x)).relu())
"""

# each command on a model built with random weights, fed random inputs where it runs a forward
COMMANDS: dict[str, list[str]] = {
    "summary": ["--input-size", "4,8", "--device", "cpu"],
    "activations": ["--input-size", "4,8"],
    "grads": ["--input-size", "4,8"],
    "stats": [],
    "check-freeze": ["--input-size", "4,8", "--freeze", "fc1.*"],
    "report": ["--input-size", "4,8", "--freeze", "fc1.*"],
    "memory": ["--input-size", "4,8", "--device", "cpu"],
}
# the commands whose numbers come from the weights or inputs drawn (summary and memory: shapes only)
VALUES = ("activations", "grads", "stats", "report")


@pytest.fixture
def net(tmp_path: Path) -> str:
    path = tmp_path / "net.py"
    path.write_text(NET)
    return f"{path}:Net"


def run_json(cli: CliRun, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output  # Net has no frozen norm layer: every check passes
    return json.loads(result.stdout)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_two_runs_give_the_same_json(cli: CliRun, net: str, command: str) -> None:
    first = run_json(cli, command, net, *COMMANDS[command], "--seed", "0")
    again = run_json(cli, command, net, *COMMANDS[command])  # --seed 0 is the default
    assert first == again


@pytest.mark.parametrize("command", VALUES)
def test_another_seed_gives_other_numbers(cli: CliRun, net: str, command: str) -> None:
    assert run_json(cli, command, net, *COMMANDS[command], "--seed", "1") != run_json(
        cli, command, net, *COMMANDS[command], "--seed", "2"
    )


@pytest.mark.parametrize(
    ("command", "options"),
    [("activations", ["--input-size", "2,3,32,32"]), ("stats", []), ("grads", ["--input-size", "2,3,32,32"])],
)
def test_a_torchvision_name_repeats_too(cli: CliRun, command: str, options: list[str]) -> None:
    assert run_json(cli, command, "squeezenet1_1", *options, "--seed", "7") == run_json(
        cli, command, "squeezenet1_1", *options, "--seed", "7"
    )


@pytest.mark.parametrize("seed", ["-1", str(2**63), "9" * 40])
def test_a_seed_out_of_range_is_one_line_exit_2(cli: CliRun, net: str, seed: str) -> None:
    result = cli("stats", net, "--seed", seed)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: --seed {seed} is out of range") and result.stderr.count("\n") == 1


def test_every_command_that_draws_random_numbers_takes_seed_with_default_0() -> None:
    import typer

    from torchscope.cli import app

    group: Any = typer.main.get_command(app)
    for name in [*COMMANDS, "bench"]:
        options = {opt: p for p in group.commands[name].params for opt in getattr(p, "opts", ())}
        assert "--seed" in options, name
        assert options["--seed"].default == 0, name


def test_bench_runs_with_the_seed_given(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def stop(config: Any, **kwargs: Any) -> None:
        seen.append(config.seed)
        raise TorchscopeError("stopped before timing")

    monkeypatch.setattr("torchscope._bench.run.run_bench", stop)
    for args in (["--seed", "5"], []):
        result = cli("bench", "--model", "resnet18", "--device", "cpu", "--no-progress", *args)
        assert result.exit_code == 2 and "stopped before timing" in result.stderr
    assert seen == [5, 0]
