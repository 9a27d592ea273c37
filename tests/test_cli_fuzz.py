"""Hostile input across ten commands: never a traceback, never exit 3, exit 1 only where a check can
fail, nothing on stdout when a command fails, and no input file changed (issue 15), also when an
output names a FIFO, a device, a module the model file imports or an ``hf:`` directory's files, with
``--force`` (issue 19).

``TORCHSCOPE_FUZZ_EXAMPLES`` sets how many command lines hypothesis draws (default 40).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import stat
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import Result
from zoo import SmallCNN

CliRun = Callable[..., Result]  # the `cli` fixture of conftest
ZOO = Path(__file__).parent / "zoo.py"
EXAMPLES = int(os.environ.get("TORCHSCOPE_FUZZ_EXAMPLES", "40"))

# placeholders filled per example with paths in a fresh folder
MODEL, WEIGHTS, FOREIGN, JUNK, FOLDER, MISSING, NEW = (
    "{model}", "{weights}", "{foreign}", "{junk}", "{folder}", "{missing}", "{new}"
)  # fmt: skip
# outputs that must never be written: a FIFO, a device node, a module the model file imports, the
# files of an hf: directory (made only for the lines that name it)
FIFO, DEVICE, HELPER, HF, HF_CONFIG, HF_WEIGHTS = (
    "{fifo}", "{device}", "{helper}", "{hf}", "{hf_config}", "{hf_weights}"
)  # fmt: skip

BIG = "9" * 40
SHAPES = ["", " ", ",", "x", "0", "-1", "4,3,8,8", "4x3x8x8", "1,3,100000,100000", BIG, f"1,{BIG}", "1e3",
          "nan", "4,3,8,8;;", "((4,3,8,8))", "٤,٣,٨,٨", "\x00", "4,3,8", "2,4,8,8", "1,3,8,8"]  # fmt: skip
PATTERNS = ["", ",", "*", "backbone", "backbone.*", "fc", "nomatch", "[", "fc,,", "\x00", "a" * 3000, "é"]
FLOATS = ["nan", "inf", "-inf", "-1", "1e308", "1e999", "0", "abc", "", "5", "0.5", "0.01"]
INTS = ["-1", "0", "1", "2", BIG, "", "abc", "1.5"]
FITS = ["24", "24GiB", "t4", "", "-1GiB", "0GB", "1KiB", "0.5", "h200", "nan", BIG + "GiB", "24 parsecs", "1B"]
DTYPES = ["", "float8", "bf16", "int64", "bool", "float64", "complex64", "\x00", "torch.float16"]
DEVICES = ["", "cpu", "meta", "cuda", "cuda:99", "mps", "tpu", "cpu:1", "\x00"]
HOSTILE = [FIFO, DEVICE, HELPER, HF_CONFIG, HF_WEIGHTS, MODEL, WEIGHTS, "/dev/null"]
OUTPUTS = [NEW, MISSING, FOLDER, MODEL, WEIGHTS, FOREIGN, "", "\x00", "/dev/null", NEW + "\n",
           FIFO, DEVICE, HELPER, HF_CONFIG, HF_WEIGHTS]  # fmt: skip
WEIGHT_FILES = [WEIGHTS, "", "nonexistent.pt", MODEL, JUNK, FOLDER, "\x00"]
ARGS = ["num_classes=-5", "=", "x", "a=b=c", "__class__=1", "n=" + "9" * 5000, "\x00=1", "num_classes=3"]
SPECS = [f"{MODEL}:SmallCNN"] * 6 + ["", ":", f"{MODEL}:", f"{MODEL}:Nope", "nonexistent.py:Net", "resnet1800",
                                     "\x00", f"{JUNK}", f"{WEIGHTS}", "builtins:dict", "math:pi", f"hf:{HF}"]  # fmt: skip

COMMON = {"--weights": WEIGHT_FILES, "--arg": ARGS, "--json": None, "--no-color": None, "--force": None,
          "--console-html": OUTPUTS, "--svg": OUTPUTS, "--freeze": PATTERNS, "--unfreeze": PATTERNS,
          "--freeze-backbone": None, "--unsafe-load": None}  # fmt: skip
STEP = {"--optimizer": ["sgd", "adam", "adamw", "", "lbfgs"], "--lr": FLOATS, "--momentum": FLOATS,
        "--weight-decay": FLOATS, "--train-bn": None, "--eval-bn": None}  # fmt: skip
COMMANDS: dict[str, dict[str, list[str] | None]] = {
    "tree": {**COMMON, "--device": DEVICES, "--depth": INTS, "--grep": PATTERNS, "--expand": None},
    "summary": {**COMMON, "--input-size": SHAPES, "--dtype": DTYPES, "--device": DEVICES, "--depth": INTS,
                "--mode": ["train", "eval", "", "x"], "--seed": INTS},
    "activations": {**COMMON, "--input-size": SHAPES, "--dtype": DTYPES, "--modules": PATTERNS, "--grads": None,
                    "--seed": INTS},
    "stats": {**COMMON, "--device": DEVICES, "--seed": INTS},
    "grads": {**COMMON, "--input-size": SHAPES, "--dtype": DTYPES, "--loss": ["auto", "ce", "", "l2"],
              "--seed": INTS},
    "check-freeze": {**COMMON, **STEP, "--input-size": SHAPES, "--dtype": DTYPES, "--steps": INTS, "--seed": INTS},
    "report": {**COMMON, **STEP, "--input-size": SHAPES, "--dtype": DTYPES, "--page": OUTPUTS,
               "--modules": PATTERNS, "--no-check": None, "--seed": INTS},
    "memory": {**COMMON, "--input-size": [*SHAPES, "3,8,8", "3,224,224", "1,3,8,8", "8,3,8,8"],
               "--batch-size": INTS, "--fit": FITS, "--dtype": DTYPES, "--device": DEVICES,
               "--optimizer": ["sgd", "sgd-momentum", "adam", "adamw", "", "lbfgs"],
               "--amp": ["off", "bf16", "fp16", "", "fp8"], "--mode": ["train", "eval", "", "x"],
               "--steps": INTS, "--channels-last": None, "--grad-checkpointing": None, "--seed": INTS},
    "models": {"--grep": PATTERNS, "--json": None, "--no-color": None},
    "diff": {"--arch": ["resnet18", "", "resnet1800", f"{MODEL}:SmallCNN"], "--expect-frozen": PATTERNS,
             "--unchanged": None, "--json": None, "--console-html": OUTPUTS, "--svg": OUTPUTS, "--force": None,
             "--unsafe-load": None},
}  # fmt: skip
# the commands whose check can find a real violation (exit 1); memory --fit: nothing fits
CHECKS = {"check-freeze", "report", "diff", "memory"}


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    name = draw(st.sampled_from(sorted(COMMANDS)))
    options = COMMANDS[name]
    if name == "models":
        line = [name]
    elif name == "diff":
        line = [name, *draw(st.lists(st.sampled_from(WEIGHT_FILES), min_size=2, max_size=2))]
    else:
        line = [name, draw(st.sampled_from(SPECS))]
    if name not in ("tree", "models", "diff") and draw(st.booleans()):
        line += ["--input-size", "4,3,8,8"]  # often a shape that works, so the later stages get fuzzed too
    for flag in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
        values = options[flag]
        line += [flag] if values is None else [flag, draw(st.sampled_from(values))]
    if name != "models" and draw(st.integers(0, 3)) == 0:
        # often a forced output that must not be written, last so that it is the one in force
        line += ["--force", draw(st.sampled_from(["--svg", "--console-html"])), draw(st.sampled_from(HOSTILE))]
    return line


def read_by(line: list[str]) -> set[str]:
    """The placeholder files the command line reads: the model spec's (and what it imports), the
    checkpoints of diff, --weights."""
    named = line[1:3] if line[0] == "diff" else line[1:2] if line[0] != "models" else []
    named += [v for flag, v in itertools.pairwise(line) if flag == "--weights"]
    keys = {k for arg in named for k in re.findall(r"\{(\w+)\}", arg)}
    if "model" in keys:
        keys.add("helper")  # the model file imports it
    if "hf" in keys:
        keys |= {"hf_config", "hf_weights"}
    return keys - {"hf", "folder", "missing", "new"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(line=command_lines())
def test_hostile_command_lines_end_in_a_clean_exit(cli: CliRun, line: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        helper = f"fuzzhelper_{uuid.uuid4().hex[:8]}"  # a fresh name: the import really reads the file
        files = {
            "model": root / "net.py", "weights": root / "w.pt", "foreign": root / "notes.html",
            "junk": root / "junk.pt", "folder": root / "dir", "missing": root / "no" / "out.html",
            "new": root / "out.html", "fifo": root / "pipe.svg", "device": root / "full",
            "helper": root / f"{helper}.py", "hf": root / "hf", "hf_config": root / "hf" / "config.json",
            "hf_weights": root / "hf" / "model.safetensors",
        }  # fmt: skip
        files["model"].write_text(ZOO.read_text(encoding="utf-8") + f"\nimport {helper}  # noqa\n", encoding="utf-8")
        files["helper"].write_text("SIZE = 8\n")
        torch.save(SmallCNN().state_dict(), files["weights"])
        files["foreign"].write_text("not ours\n")
        files["junk"].write_bytes(b"\x80\x02" + os.urandom(200))  # starts like a pickle
        files["folder"].mkdir()
        os.mkfifo(files["fifo"])
        try:  # a copy of /dev/full: a regression replaces this node, never the machine's own
            os.mknod(files["device"], stat.S_IFCHR | 0o666, os.makedev(1, 7))
        except OSError:
            files["device"] = Path("/dev/full")  # only root could replace it, and root makes the copy
        if any("{hf" in a for a in line):
            from hf_tiny import save_tiny

            save_tiny(files["hf"])
        args = [a.format(**{k: str(v) for k, v in files.items()}) for a in line]
        inputs = [files[k] for k in read_by(line)]
        if "--force" not in line:  # then nothing that torchscope did not write is overwritten either
            inputs += [files[k] for k in ("model", "weights", "foreign", "junk", "helper", "hf_config", "hf_weights")]
        before = [digest(p) for p in inputs]
        # a writer holds the FIFO open with bytes in it: a regression reading it fails, never hangs
        holder = os.open(files["fifo"], os.O_RDWR | os.O_NONBLOCK)
        os.write(holder, b"x" * 8192)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            result = cli(*args)
        finally:
            os.chdir(cwd)
            os.close(holder)
            sys.modules.pop(helper, None)
        shown = f"torchscope {' '.join(map(repr, args))}\n{result.output}"
        assert "Traceback" not in result.output, shown
        assert result.exit_code in ((0, 1, 2) if line[0] in CHECKS else (0, 2)), shown
        if result.exit_code == 2:
            assert result.stdout == "", shown  # a failed command prints no numbers
            assert result.stderr.strip(), shown
        assert [digest(p) for p in inputs] == before, shown
        assert stat.S_ISFIFO(os.stat(files["fifo"]).st_mode), shown
        assert stat.S_ISCHR(os.stat(files["device"]).st_mode), shown
