"""What a command takes as input (issue 19): every command that runs a forward takes the same input
options, and its errors name options it has; module specs resolve from the current folder, as with
``python -m``; a ``torch.compile``d model gets no Dynamo warning about torchscope's own functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import Result

import torchscope

CliRun = Callable[..., Result]  # the `cli` fixture of conftest
ROOT = Path(__file__).resolve().parent.parent

EMBEDDING = """\
import torch.nn as nn


class Emb(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.emb(x)).mean(1)
"""

# every command that runs a forward pass, with what else it needs to run this model
FORWARD: dict[str, list[str]] = {
    "summary": [],
    "activations": [],
    "grads": [],
    "check-freeze": ["--freeze", "fc.bias"],
    "report": ["--freeze", "fc.bias"],
    "memory": ["--device", "cpu"],
}


@pytest.fixture
def embedding(tmp_path: Path) -> str:
    path = tmp_path / "emb.py"
    path.write_text(EMBEDDING)
    return f"{path}:Emb"


# -- the same input options everywhere ------------------------------------------------------------
def test_every_forward_command_takes_the_same_input_options() -> None:
    import typer

    from torchscope.cli import app

    group: Any = typer.main.get_command(app)
    for name in [*FORWARD, "bench"]:
        options = {opt for p in group.commands[name].params for opt in getattr(p, "opts", ())}
        assert {"--input-size", "--tokens", "--dtype", "--input-dtype", "--seed"} <= options, name


@pytest.mark.parametrize("command", sorted(FORWARD))
def test_an_embedding_model_runs_in_every_forward_command_given_long_ids(
    cli: CliRun, embedding: str, command: str
) -> None:
    result = cli(command, embedding, "--input-size", "2,8", "--dtype", "long", *FORWARD[command], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)


@pytest.mark.parametrize("command", sorted(FORWARD))
def test_without_long_ids_the_error_names_the_dtype_option(cli: CliRun, embedding: str, command: str) -> None:
    result = cli(command, embedding, "--input-size", "2,8", *FORWARD[command])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith("give token ids (--dtype long)"), result.stderr


def test_report_checks_the_freeze_of_a_model_fed_token_ids(cli: CliRun, embedding: str) -> None:
    result = cli("report", embedding, "--input-size", "2,8", "--dtype", "long", "--freeze", "emb.*", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["check_ok"] is True  # no more "freeze check skipped: ... integer inputs"
    assert data["memory"] is not None


def test_check_freeze_with_long_ids_sees_a_frozen_embedding_kept() -> None:
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    net[0].requires_grad_(False)
    report = torchscope.check_freeze(net, input_size=(2, 3), dtype="long")
    assert report.ok and report.to_dict()["frozen_params"] == 1  # the embedding weight


# -- module specs from the current folder ---------------------------------------------------------
@pytest.fixture
def package(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A package of the user's, not installed: (the folder that holds it, its name)."""
    name = f"mypkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "layers.py").write_text(
        "import torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(8, 4)\n"
    )
    (tmp_path / name / "models.py").write_text(
        f"import torch.nn as nn\n\n\ndef build_net():\n    from {name}.layers import Block  # imported late\n\n"
        "    return nn.Sequential(Block(), nn.Linear(4, 2))\n"
    )
    yield tmp_path, name
    for key in [k for k in sys.modules if k == name or k.startswith(f"{name}.")]:
        del sys.modules[key]


def test_a_module_spec_resolves_from_the_current_folder_and_sys_path_is_restored(
    cli: CliRun, package: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, name = package
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or ".") != str(folder)])
    before = list(sys.path)
    result = cli("tree", f"{name}.models:build_net", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_params"] == 36 + 10
    assert sys.path == before


@pytest.mark.slow
def test_the_console_script_resolves_a_module_spec_from_the_current_folder(
    package: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, name = package
    # the console script as pip writes it: its own folder, not the current one, on sys.path
    script = tmp_path_factory.mktemp("bin") / "torchscope"
    script.write_text("import sys\nfrom torchscope.cli import main\n\nsys.exit(main())\n")
    proc = subprocess.run(
        [sys.executable, str(script), "tree", f"{name}.models:build_net", "--json"],
        cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_params"] == 46


# -- torch.compile ---------------------------------------------------------------------------------
def _ours(caught: list[warnings.WarningMessage]) -> list[str]:
    package = str(Path(torchscope.__file__).parent)
    return [
        f"{w.filename}:{w.lineno}: {w.message}"
        for w in caught
        if "torchscope" in str(w.message) or w.filename.startswith(package) or "Dynamo" in str(w.message)
        or "torch.compile" in str(w.message)
    ]


@pytest.mark.slow
def test_a_compiled_model_gets_no_dynamo_warning_about_torchscope() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    model[0].requires_grad_(False)
    compiled = torch.compile(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = torchscope.summary(compiled, input_size=(4, 8), verbose=0)
        with torchscope.record(compiled) as rec:
            compiled(torch.randn(4, 8))
        g = torchscope.grad_report(compiled, input_size=(4, 8))
        check = torchscope.check_freeze(compiled, input_size=(4, 8), train_bn=False)
        report = torchscope.collect_report(compiled, input_size=(4, 8), train_bn=False)
        memory = torchscope.estimate_memory(compiled, (4, 8), device="cpu")
    assert _ours(caught) == []
    params = sum(p.numel() for p in model.parameters())
    assert s.total_params == report.total_params == params
    assert {c.module for c in rec.report().calls} >= {"_orig_mod.0", "_orig_mod.3"}
    assert [layer.name for layer in g.layers if layer.trainable] == ["1", "3"]
    assert check.ok and memory.total_params == params


def test_a_summary_leaves_no_global_hook_behind() -> None:
    # torch keeps the with_kwargs flag of a removed global hook; a stale one makes every later
    # torch.compile'd call warn about global hooks
    torchscope.summary(nn.Sequential(nn.Linear(4, 2)), input_size=(1, 4), verbose=0)
    assert not torch.nn.modules.module._has_any_global_hook()
