"""Bad input to the loader, written the way a user hits it: one line on stderr, exit 2, no traceback.

Each case writes its files into a fresh working directory and runs ``torchscope tree ...`` as a user
would; where the Python API has the same input, it raises a :class:`TorchscopeError` with the same
message.
"""

from __future__ import annotations

import re
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from torchscope import TorchscopeError, diff_checkpoints, load_model
from torchscope._loader import load_weights
from torchscope._loader.checkpoint import CheckpointError, storage_names
from torchscope._loader.objects import ModelCodeError

NET_PY = """\
from torch import nn


class Net(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        if width < 0:
            raise ValueError(f"width must be >= 0, got {width}")
        self.a = nn.Linear(3, width)

    def forward(self, x):
        return self.a(x)


def build_broken():
    layers = []
    return layers[3]


def build_linear():
    return nn.Sequential(nn.Linear(300, 400), nn.ReLU(), nn.Linear(400, 10))
"""

MYNET_PY = """\
from torch import nn


class MyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
"""


def linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(300, 400), nn.ReLU(), nn.Linear(400, 10))


def record_offset(path: Path, name: str) -> int:
    """Where the bytes of zip record ``name`` start in the file."""
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(name).header_offset
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[offset + 26 : offset + 30])
    return offset + 30 + name_len + extra_len


def flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


# --- the files each case needs -------------------------------------------------------------------


def files_net(d: Path) -> None:
    (d / "net.py").write_text(NET_PY)


def files_exit(d: Path) -> None:
    (d / "exit0.py").write_text("import sys\nsys.exit(0)\n")
    (d / "sysexit.py").write_text("raise SystemExit\n")
    (d / "kbi.py").write_text("raise KeyboardInterrupt\n")
    (d / "initexit.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        raise SystemExit(3)\n"
    )
    (d / "initkbi.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        raise KeyboardInterrupt\n"
    )
    (d / "exitpkg").mkdir()
    (d / "exitpkg" / "__init__.py").write_text("import sys\n\nsys.exit(0)\n")
    (d / "badpkg").mkdir()
    (d / "badpkg" / "__init__.py").write_text("x = 1\nraise ValueError('no config')\n")


def files_checkpoints(d: Path) -> None:
    files_net(d)
    (d / "pick.pt").write_bytes(b"\x80\x02" + bytes(range(7, 250, 3)) * 3)  # starts like a pickle
    (d / "pop.pt").write_bytes(b"\x80\x02.")  # the unpickler's IndexError: pop from empty list
    (d / "empty.pt").write_bytes(b"")
    (d / "weights").mkdir()
    torch.save({k: v.to(torch.int64) for k, v in linear().state_dict().items()}, d / "int.pt")
    torch.save(linear().state_dict(), d / "full.pt")
    raw = (d / "full.pt").read_bytes()
    (d / "half.pt").write_bytes(raw[: len(raw) // 2])
    torch.save({"epoch": 3, "state_dict": linear().state_dict()}, d / "ck.pt")
    flip(d / "ck.pt", record_offset(d / "ck.pt", "ck/data/2") + 100)  # inside 2.weight
    torch.save(linear().state_dict(), d / "idx.pt")
    flip(d / "idx.pt", record_offset(d / "idx.pt", "idx/data.pkl") + 40)
    (d / "m").mkdir()
    (d / "m" / "mynet.py").write_text(MYNET_PY)
    sys.path.insert(0, str(d / "m"))
    try:
        import mynet  # type: ignore[import-not-found]

        torch.save(mynet.MyNet(), d / "m" / "whole.pt")
    finally:
        sys.path.remove(str(d / "m"))
        sys.modules.pop("mynet", None)


# (files, argv after `tree`, stderr pattern): the one line each must print
CASES: list[tuple[Callable[[Path], None], list[str], str]] = [
    # a factory, __init__ or --arg value that raises
    (
        files_net,
        ["net.py:Net", "--arg", "width=-5"],
        r"^error: calling net.py:Net\(width=-5\) failed: ValueError: width must be >= 0, got -5 "
        r"at net.py:8 \(in __init__\); fix the model code there, or the --arg values$",
    ),
    (
        files_net,
        ["net.py:build_broken"],
        r"^error: calling net.py:build_broken\(\) failed: IndexError: list index out of range at net.py:17 "
        r"\(in build_broken\); fix the model code there",
    ),
    (
        files_net,
        ["net.py:Net", "--arg", "depth=3"],
        r"^error: calling net.py:Net\(depth=3\) failed: TypeError: .*unexpected keyword argument 'depth'; "
        r"check the --arg values$",
    ),
    (
        files_net,
        ["resnet18", "--arg", "num_classes=-5"],
        r"^error: building resnet18\(num_classes=-5\) failed: RuntimeError: Trying to create tensor with "
        r"negative dimension -5.*; check the --arg values$",
    ),
    # any BaseException from the user's code at import or construction
    (
        files_exit,
        ["exit0.py:Net"],
        r"^error: importing exit0.py failed: SystemExit\(0\) at exit0.py:2 \(in <module>\); a model file "
        r"must not exit when torchscope imports it; move script code under `if __name__ == '__main__':`$",
    ),
    (files_exit, ["sysexit.py:Net"], r"^error: importing sysexit.py failed: SystemExit\(None\) at sysexit.py:1 "),
    (files_exit, ["kbi.py:Net"], r"^error: .*KeyboardInterrupt at kbi.py:1 \(in <module>\)"),
    (
        files_exit,
        ["initexit.py:Net"],
        r"^error: calling initexit.py:Net\(\) failed: SystemExit\(3\) at initexit.py:7 \(in __init__\); "
        r"a model must not exit while torchscope builds it",
    ),
    (files_exit, ["initkbi.py:Net"], r"^error: .*KeyboardInterrupt at initkbi.py:7 \(in __init__\)"),
    (files_exit, ["exitpkg:Net"], r"^error: importing 'exitpkg' failed: SystemExit\(0\) at exitpkg/__init__.py:3 "),
    (
        files_exit,
        ["badpkg:Net"],
        r"^error: importing 'badpkg' failed: ValueError: no config at badpkg/__init__.py:2 \(in <module>\); "
        r"fix the module$",
    ),
    # checkpoint files
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", "pick.pt"],
        r"^error: pick.pt is not a loadable PyTorch checkpoint \(damaged pickle: .+\); check the file$",
    ),
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", "pop.pt"],
        r"^error: pop.pt is not a loadable PyTorch checkpoint \(IndexError: pop from empty list\); check the file$",
    ),
    (files_checkpoints, ["pop.pt"], r"^error: pop.pt is not a loadable PyTorch checkpoint \(IndexError"),
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", "int.pt"],
        r"^error: int.pt stores float tensors as integers at \[0.weight int64 vs float32, 0.bias int64 vs "
        r"float32, .*\] \(file vs model\); the file was converted or damaged",
    ),
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", ""],
        r"^error: --weights is empty \(or '.'\); give the path of a state_dict file, or leave the option out$",
    ),
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", "weights"],
        r"^error: --weights weights is a directory; give the state_dict file in it$",
    ),
    (files_checkpoints, ["net.py:build_linear", "--weights", "empty.pt"], r"^error: empty.pt is empty \(0 bytes\)"),
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", "half.pt"],
        r"^error: half.pt is a truncated or damaged zip archive \(the torch.save format; \d+ bytes, .*\); "
        r"copy or download it again",
    ),
    (files_checkpoints, ["half.pt"], r"^error: half.pt is a truncated or damaged zip archive"),
    (
        files_checkpoints,
        ["m/whole.pt", "--unsafe-load"],
        r"^error: m/whole.pt holds a whole mynet.MyNet, and module 'mynet' is not importable "
        r"\(ModuleNotFoundError: No module named 'mynet'\); add m to PYTHONPATH, or load it as "
        r"`m/mynet.py:MyNet --weights m/whole.pt --unsafe-load`$",
    ),
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", "ck.pt"],
        r"^error: ck.pt is damaged: the bytes of tensor 'state_dict.2.weight' \(record ck/data/2\) are "
        r"corrupt \(its CRC-32 does not match\); copy or download it again \(or pass --no-verify",
    ),
    (
        files_checkpoints,
        ["net.py:build_linear", "--weights", "idx.pt"],
        r"^error: idx.pt is damaged: its index of tensors \(idx/data.pkl\) is corrupt \(its CRC-32 does not match\)",
    ),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's working directory; importable, as `python -m torchscope` would make it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("files", "argv", "pattern"), CASES, ids=[" ".join(argv) or "empty" for _, argv, _ in CASES]
)
def test_bad_input_is_one_line_and_exit_2(files, argv, pattern, workdir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    files(workdir)
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    result = cli("tree", *argv, "--no-cache")
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    # no input file changed (and none was written beside them but bytecode)
    after = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert after == {p: b for p, b in before.items() if "__pycache__" not in p.parts}


# --- the same inputs through the Python API --------------------------------------------------------


def test_api_user_code_errors_are_model_code_errors(workdir: Path) -> None:
    files_net(workdir)
    files_exit(workdir)
    with pytest.raises(ModelCodeError, match=r"ValueError: width must be >= 0, got -5 at net.py:8 \(in __init__\)"):
        load_model("net.py:Net", kwargs={"width": -5})
    with pytest.raises(ModelCodeError, match=r"SystemExit\(0\) at exit0.py:2"):
        load_model("exit0.py:Net")
    with pytest.raises(ModelCodeError, match=r"SystemExit\(3\) at initexit.py:7 \(in __init__\)"):
        load_model("initexit.py:Net")
    # a KeyboardInterrupt stays one in Python (the CLI tells the user's from a real Ctrl-C)
    with pytest.raises(KeyboardInterrupt):
        load_model("kbi.py:Net")
    # and the failed import left nothing behind: the fixed file imports
    (workdir / "net.py").write_text(NET_PY)
    assert load_model("net.py:Net", kwargs={"width": 2}).a.out_features == 2


def test_api_checkpoint_errors_are_checkpoint_errors(workdir: Path) -> None:
    files_checkpoints(workdir)
    for name, message in [
        ("pick.pt", r"damaged pickle"),
        ("pop.pt", r"IndexError: pop from empty list"),
        ("half.pt", r"truncated or damaged zip archive"),
        ("ck.pt", r"tensor 'state_dict.2.weight' \(record ck/data/2\)"),
        ("empty.pt", r"is empty \(0 bytes\)"),
    ]:
        with pytest.raises(CheckpointError, match=message):
            load_weights(linear(), name)
    with pytest.raises(TorchscopeError, match=r"stores float tensors as integers"):
        load_weights(linear(), "int.pt")
    with pytest.raises(TorchscopeError, match=r"--weights is empty"):
        load_model("net.py:build_linear", weights="")


def test_no_verify_loads_the_damaged_checkpoint_and_verify_names_it(workdir: Path) -> None:
    files_checkpoints(workdir)
    model = load_weights(linear(), "ck.pt", verify=False)
    good = linear().state_dict()["2.weight"]
    assert not torch.equal(model.state_dict()["2.weight"], good)  # the damage is real
    assert torch.equal(model.state_dict()["0.weight"], linear().state_dict()["0.weight"])
    with pytest.raises(CheckpointError, match=r"'state_dict.2.weight'"):
        load_model("net.py:build_linear", weights="ck.pt")
    assert isinstance(load_model("net.py:build_linear", weights="ck.pt", verify=False), nn.Sequential)


def test_diff_checks_crcs_too(workdir: Path) -> None:
    files_checkpoints(workdir)
    with pytest.raises(CheckpointError, match=r"ck.pt is damaged: the bytes of tensor 'state_dict.2.weight'"):
        diff_checkpoints("full.pt", "ck.pt")
    report = diff_checkpoints("full.pt", "ck.pt", verify=False)
    assert {e.name for e in report.entries if e.status == "changed"} == {"2.weight"}


def test_damage_in_a_whole_model_file_names_its_state_dict_key(workdir: Path) -> None:
    path = workdir / "whole.pt"
    torch.save(linear(), path)
    assert sorted(n for names in storage_names(path).values() for n in names) == [
        "0.bias", "0.weight", "2.bias", "2.weight"
    ]  # fmt: skip
    key = next(k for k, names in storage_names(path).items() if names == ["0.bias"])
    flip(path, record_offset(path, f"whole/data/{key}") + 5)
    with pytest.raises(CheckpointError, match=rf"tensor '0.bias' \(record whole/data/{key}\)"):
        load_model(str(path), unsafe_load=True)


def test_a_whole_model_beside_its_class_loads_as_the_error_suggests(workdir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    files_checkpoints(workdir)
    result = cli("tree", "m/mynet.py:MyNet", "--weights", "m/whole.pt", "--unsafe-load", "--no-cache", "--json")
    assert result.exit_code == 0, result.output
    assert '"total_params": 16' in result.stdout
    assert "mynet" not in sys.modules  # the alias lived only while the file was unpickled
