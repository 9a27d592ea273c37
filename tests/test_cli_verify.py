"""A damaged checkpoint at the command line: every command that reads one names the damaged tensor
(exit 2), and ``--no-verify`` loads it anyway; ``diff`` never writes over the checkpoints it compares."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import Result

CliRun = Callable[..., Result]  # the `cli` fixture of conftest

NET_PY = """\
from torch import nn


def build():
    return nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 10))
"""
DAMAGED = (
    "error: ck.pt is damaged: the bytes of tensor '2.weight' (record ck/data/2) are corrupt "
    "(its CRC-32 does not match); copy or download it again (or pass --no-verify to load it anyway)\n"
)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 10))


def damage(path: Path, record: str) -> None:
    """Flip one byte inside the data of zip record ``record`` (its CRC-32 then does not match)."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(record).header_offset
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[offset + 26 : offset + 30])
    raw[offset + 30 + name_len + extra_len + 20] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """net.py, its good weights full.pt and ck.pt: the same weights with a byte flipped in 2.weight."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(NET_PY)
    torch.save(net().state_dict(), tmp_path / "full.pt")
    torch.save(net().state_dict(), tmp_path / "ck.pt")
    damage(tmp_path / "ck.pt", "ck/data/2")  # storages are numbered in order: 2 is 2.weight
    return tmp_path


COMMANDS = [
    ["tree"],
    ["summary", "--input-size", "2,30"],
    ["activations", "--input-size", "2,30"],
    ["stats"],
    ["grads", "--input-size", "2,30"],
    ["check-freeze", "--input-size", "2,30", "--freeze", "0"],
    ["report", "--input-size", "2,30", "--no-check"],
    ["memory", "--input-size", "2,30"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_damaged_tensor_is_named_and_no_verify_loads_it(
    cli: CliRun, workdir: Path, command: list[str]
) -> None:
    name, *rest = command
    before = (workdir / "ck.pt").read_bytes()
    refused = cli(name, "net.py:build", "--weights", "ck.pt", *rest, "--json")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == DAMAGED and refused.stdout == ""
    loaded = cli(name, "net.py:build", "--weights", "ck.pt", *rest, "--json", "--no-verify")
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout.startswith("{") and loaded.stderr == ""
    assert (workdir / "ck.pt").read_bytes() == before


def test_no_verify_really_loads_the_damaged_bytes(cli: CliRun, workdir: Path) -> None:
    good = cli("stats", "net.py:build", "--weights", "full.pt", "--json")
    bad = cli("stats", "net.py:build", "--weights", "ck.pt", "--json", "--no-verify")
    assert good.exit_code == bad.exit_code == 0, bad.output
    assert good.stdout != bad.stdout  # the flipped byte is in the numbers: --no-verify hides nothing


def test_diff_names_the_damaged_tensor_and_no_verify_compares_it(cli: CliRun, workdir: Path) -> None:
    refused = cli("diff", "full.pt", "ck.pt", "--json")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr == DAMAGED
    compared = cli("diff", "full.pt", "ck.pt", "--json", "--no-verify", "--expect-frozen", "2.weight")
    assert compared.exit_code == 1, compared.output  # the damage is the one change, and it is caught
    assert '"2.weight"' in compared.stdout


@pytest.mark.parametrize("option", ["--console-html", "--svg"])
def test_diff_never_writes_over_the_checkpoints_it_compares(cli: CliRun, workdir: Path, option: str) -> None:
    torch.save({k: v + 1 for k, v in net().state_dict().items()}, workdir / "ft.pt")
    before = {p: (workdir / p).read_bytes() for p in ("full.pt", "ft.pt")}
    for target in before:
        result = cli("diff", "full.pt", "ft.pt", option, target, "--force")
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == (
            f"error: {option} {target!r} is an input of this command; write the output to another file\n"
        )
    assert {p: (workdir / p).read_bytes() for p in before} == before
    ok = cli("diff", "full.pt", "ft.pt", option, "out")
    assert ok.exit_code == 0, ok.output
    assert (workdir / "out").stat().st_size > 0


def test_every_command_that_reads_a_checkpoint_takes_no_verify() -> None:
    from torchscope.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    readers = {"diff"} | {
        name for name, cmd in commands.items() if any(p.name == "weights" for p in cmd.params)
    }
    expected = {
        "tree",
        "summary",
        "activations",
        "stats",
        "grads",
        "check-freeze",
        "report",
        "memory",
        "diff",
    }
    assert expected <= readers
    missing = sorted(
        name for name in readers if not any("--no-verify" in p.opts for p in commands[name].params)
    )
    assert missing == []
