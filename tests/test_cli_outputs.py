"""Outputs are bounded and lose nothing (issue 19): ``--force`` overwrites only a regular file that
the command did not read, new files get the umask, ``--json`` stdout holds only JSON even when the
model writes to file descriptor 1 or from a thread, and a usage error is one line."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import Result

CliRun = Callable[..., Result]  # the `cli` fixture of conftest
ROOT = Path(__file__).resolve().parent.parent


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def imported_helper(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A model file ``net.py`` whose model lives in a sibling module it imports: (net.py, helper)."""
    name = f"helper_{uuid.uuid4().hex[:8]}"  # a fresh name: the import really reads the file
    helper = tmp_path / f"{name}.py"
    helper.write_text(
        "import torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(8, 4)\n\n    def forward(self, x):\n"
        "        return self.fc(x)\n"
    )
    net = tmp_path / "net.py"
    net.write_text(f"from {name} import Block as Net\n")
    yield net, helper
    sys.modules.pop(name, None)


# -- never an input -------------------------------------------------------------------------------
def test_force_never_writes_over_a_module_the_model_file_imports(
    cli: CliRun, imported_helper: tuple[Path, Path]
) -> None:
    net, helper = imported_helper
    before = digest(helper)
    result = cli("tree", f"{net}:Net", "--svg", helper, "--force")
    assert result.exit_code == 2 and result.stdout == ""
    assert "is an input of this command" in result.stderr
    assert digest(helper) == before


def test_force_never_writes_over_a_file_the_model_reads_while_it_is_built(cli: CliRun, tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\nc\n")
    net = tmp_path / "net.py"
    net.write_text(
        "import torch.nn as nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"        n = len(open({str(vocab)!r}).read().split())\n        self.emb = nn.Embedding(n, 4)\n"
    )
    result = cli("tree", f"{net}:Net", "--console-html", vocab, "--force")
    assert result.exit_code == 2 and "is an input of this command" in result.stderr
    assert vocab.read_text() == "a\nb\nc\n"


def test_force_never_writes_over_a_hard_link_of_an_imported_module(
    cli: CliRun, imported_helper: tuple[Path, Path]
) -> None:
    net, helper = imported_helper
    link = net.parent / "same.svg"
    os.link(helper, link)
    result = cli("tree", f"{net}:Net", "--svg", link, "--force")
    assert result.exit_code == 2 and "is an input of this command" in result.stderr
    assert link.read_text() == helper.read_text() and "import torch" in helper.read_text()


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "generation_config.json"])
def test_force_never_writes_over_a_file_of_the_hf_directory(cli: CliRun, tmp_path: Path, name: str) -> None:
    from hf_tiny import save_tiny

    folder = tmp_path / "tiny"
    save_tiny(folder)
    before = {p.name: digest(p) for p in folder.iterdir()}
    assert name in before
    result = cli("tree", f"hf:{folder}", "--svg", folder / name, "--force")
    assert result.exit_code == 2 and result.stdout == ""
    assert "is an input of this command" in result.stderr
    assert {p.name: digest(p) for p in folder.iterdir()} == before


def test_an_adapters_base_directory_is_an_input_too(cli: CliRun, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from hf_tiny import save_tiny
    from peft import LoraConfig, get_peft_model

    base = tmp_path / "base"
    model = save_tiny(base)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base)
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    before = digest(base / "model.safetensors")
    result = cli("tree", f"hf:{tmp_path / 'adapter'}", "--svg", base / "model.safetensors", "--force")
    assert result.exit_code == 2 and "is an input of this command" in result.stderr, result.output
    assert digest(base / "model.safetensors") == before


# -- only regular files ---------------------------------------------------------------------------
def test_a_fifo_is_refused_with_or_without_force_and_stays_a_fifo(
    cli: CliRun, imported_helper: tuple[Path, Path]
) -> None:
    net, _ = imported_helper
    fifo = net.parent / "out.svg"
    os.mkfifo(fifo)
    # a writer holds the FIFO open with bytes in it, so that a regression reading it fails
    # instead of hanging
    holder = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        for force in ([], ["--force"]):
            os.write(holder, b"x" * 8192)
            result = cli("tree", f"{net}:Net", "--svg", fifo, *force)
            assert result.exit_code == 2 and result.stdout == ""
            assert "is a FIFO (named pipe), not a regular file" in result.stderr
            assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    finally:
        os.close(holder)


def test_a_device_node_is_refused_even_with_force(cli: CliRun, imported_helper: tuple[Path, Path]) -> None:
    net, _ = imported_helper
    device = net.parent / "full"
    try:  # a copy of /dev/full (1, 7): a regression replaces this node, never the machine's /dev/full
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, OSError):
        pytest.skip("making a device node needs root")
    result = cli("tree", f"{net}:Net", "--svg", device, "--force")
    assert result.exit_code == 2 and "is a character device, not a regular file" in result.stderr
    assert stat.S_ISCHR(os.stat(device).st_mode)


# -- file modes -----------------------------------------------------------------------------------
def test_a_new_file_gets_the_umask_and_an_overwritten_one_keeps_its_mode(
    cli: CliRun, imported_helper: tuple[Path, Path]
) -> None:
    net, _ = imported_helper
    out = net.parent / "tree.svg"
    old = os.umask(0o027)
    try:
        assert cli("tree", f"{net}:Net", "--svg", out).exit_code == 0
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o640  # 0o666 less the umask, as open() gives
        os.chmod(out, 0o604)
        assert cli("tree", f"{net}:Net", "--svg", out).exit_code == 0  # ours: overwritten
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o604
    finally:
        os.umask(old)


# -- usage errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["tree", "resnet18", "--bogus"], "no such option: --bogus"),
        (["tree", "resnet18", "--dept", "2"], "no such option: --dept (did you mean --depth"),
        (["tree"], "missing argument 'MODEL'"),
        (["tree", "resnet18", "--depth", "abc"], "invalid value for '--depth'"),
        (["summary", "resnet18", "--input-size"], "option '--input-size' requires an argument"),
        (["nosuchcommand"], "no such command 'nosuchcommand'"),
        (["tree", "resnet18", "extra"], "got unexpected extra argument(s) (extra)"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_help(cli: CliRun, args: list[str], what: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {what}")
    command = args[0] if args[0] != "nosuchcommand" else ""
    assert result.stderr.rstrip().endswith(f"see '{' '.join(['torchscope', command]).strip()} --help'")


# -- --json through the real process --------------------------------------------------------------
NOISY = """\
import os, threading, time
import torch.nn as nn

os.write(1, b"import writes to fd 1\\n")


def chatter():
    while True:  # a non-daemon thread that never ends, writing before and after the answer
        os.write(1, b"thread writes to fd 1\\n")
        print("thread prints", flush=True)
        time.sleep(0.01)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)
        threading.Thread(target=chatter).start()

    def forward(self, x):
        os.write(1, b"forward writes to fd 1\\n")
        return self.fc(x)
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", [["summary", "--device", "cpu"], ["activations"]])
def test_json_stdout_holds_only_json_when_the_model_writes_to_fd_1_and_from_a_thread(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "noisy.py").write_text(NOISY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    name, *options = command
    proc = subprocess.run(
        [sys.executable, "-m", "torchscope", name, "noisy.py:Net", "--input-size", "1,8", "--json", *options],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip  # a process kept alive by the thread runs into the timeout
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # the whole of stdout: nothing before or after the JSON
    assert isinstance(data, dict) and data
    assert "forward writes to fd 1" in proc.stderr and "thread prints" in proc.stderr
