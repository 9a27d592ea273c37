"""The exit-code contract, applied by the app to every command (docs/cli.md, "Exit codes")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import Result

from torchscope.cli import app
from torchscope.cli._exit import BUG_LINE, ExitCode

CliRun = Callable[..., Result]  # the `cli` fixture of conftest
ZOO = str(Path(__file__).parent / "zoo.py")

NET = """\
import torch


class Net(torch.nn.Module):
    def __init__(self, n: int = 2) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, n)

    def forward(self, x):
{forward}
"""


def write_model(tmp_path: Path, forward: str = "return self.fc(x)", top: str = "") -> str:
    path = tmp_path / "net.py"
    path.write_text(top + NET.format(forward="        " + forward))
    return f"{path}:Net"


def test_exit_codes_are_defined_once() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 130]
    assert ExitCode.BAD_INPUT == 2 and ExitCode.INTERNAL == 3


def test_every_command_is_under_the_contract() -> None:
    import typer.main

    from torchscope.cli._app import TorchscopeCommand, TorchscopeGroup

    group = typer.main.get_command(app)
    assert isinstance(group, TorchscopeGroup)
    commands = group.commands  # type: ignore[attr-defined]
    assert {"tree", "summary", "report"} <= set(commands)
    assert all(isinstance(c, TorchscopeCommand) for c in commands.values())


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (["tree", f"{ZOO}:SmallCNN", "--no-cache"], "torchscope._tree.tree"),
        (["summary", f"{ZOO}:SmallCNN", "--input-size", "2,3,8,8"], "torchscope._summary.summary"),
        (["stats", f"{ZOO}:SmallCNN"], "torchscope._stats.param_stats"),
    ],
)
def test_a_collector_raising_runtime_error_is_a_bug_exit_3(
    cli: CliRun, monkeypatch: pytest.MonkeyPatch, command: list[str], target: str
) -> None:
    monkeypatch.setattr(target, mock.Mock(side_effect=RuntimeError("collector exploded")))
    result = cli(*command)
    assert result.exit_code == ExitCode.INTERNAL == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "RuntimeError: collector exploded" in lines
    assert lines[-1] == f"error: {BUG_LINE}"


@pytest.mark.parametrize(
    ("top", "forward", "line", "raised", "where"),
    [
        ("import sys\nsys.exit(0)\n", "return self.fc(x)", 2, "SystemExit(0)", "<module>"),
        ("raise KeyboardInterrupt\n", "return self.fc(x)", 1, "KeyboardInterrupt", "<module>"),
        ("", "raise SystemExit(3)", 10, "SystemExit(3)", "forward"),
        ("", "raise KeyboardInterrupt", 10, "KeyboardInterrupt", "forward"),
    ],
)
def test_user_model_exiting_or_interrupting_is_bad_input_exit_2(
    cli: CliRun, tmp_path: Path, top: str, forward: str, line: int, raised: str, where: str
) -> None:
    spec = write_model(tmp_path, forward, top)
    for command in (
        ["summary", spec, "--input-size", "2,3", "--device", "cpu"],
        ["grads", spec, "--input-size", "2,3"],
    ):
        result = cli(*command)
        assert result.exit_code == ExitCode.BAD_INPUT == 2, result.output
        assert result.stdout == ""
        # one line naming the user's file and line and what it raised (the loader or the app says it)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
        assert f"{raised} at {tmp_path / 'net.py'}:{line} (in {where})" in result.stderr


def test_user_model_raising_in_init_names_its_line_and_the_arg(cli: CliRun, tmp_path: Path) -> None:
    spec = write_model(tmp_path)
    result = cli("tree", spec, "--arg", "n=-5")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "RuntimeError: " in result.stderr
    assert f"{tmp_path / 'net.py'}:7 (in __init__)" in result.stderr and "--arg" in result.stderr
    assert "Traceback" not in result.output


def test_torchscope_error_is_one_line_exit_2(cli: CliRun) -> None:
    result = cli("tree", "resnet1800")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "resnet18" in result.stderr  # the suggestion


def test_a_usage_error_is_one_line_exit_2(cli: CliRun) -> None:
    result = cli("tree", "resnet18", "--no-such-flag")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: no such option: --no-such-flag; see ")


def test_a_violation_is_exit_1(cli: CliRun) -> None:
    result = cli("report", f"{ZOO}:SmallCNN", "--input-size", "4,3,8,8", "--freeze", "backbone", "--json")
    assert result.exit_code == ExitCode.VIOLATION == 1


def test_a_real_ctrl_c_is_130_not_bad_input(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal
    import time

    def interrupted(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the signal arrives first

    monkeypatch.setattr("torchscope._stats.param_stats", interrupted)
    result = cli("stats", f"{ZOO}:SmallCNN")
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    assert result.stderr == "interrupted\n" and result.stdout == ""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_the_model_specs_own_file_is_the_users_even_when_installed(
    cli: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as if net.py lived in site-packages: only the spec tells that it is the user's code
    monkeypatch.setattr("torchscope.cli._exit.user_frame", lambda exc: None)
    spec = write_model(tmp_path, "raise KeyboardInterrupt")
    result = cli("grads", spec, "--input-size", "2,3")
    assert result.exit_code == 2, result.output
    assert f"KeyboardInterrupt at {tmp_path / 'net.py'}:10 (in forward)" in result.stderr


def test_a_system_exit_0_from_torchscope_itself_is_a_bug_not_a_success(
    cli: CliRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("torchscope._stats.param_stats", mock.Mock(side_effect=SystemExit(0)))
    result = cli("stats", f"{ZOO}:SmallCNN")
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"error: {BUG_LINE}"
