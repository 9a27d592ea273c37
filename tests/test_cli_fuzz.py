"""Hostile input across ten commands: never a traceback, never exit 3, exit 1 only where a check can
fail, nothing on stdout when a command fails, and no input file changed (issue 15).

``TORCHSCOPE_FUZZ_EXAMPLES`` sets how many command lines hypothesis draws (default 40).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
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

BIG = "9" * 40
SHAPES = ["", " ", ",", "x", "0", "-1", "4,3,8,8", "4x3x8x8", "1,3,100000,100000", BIG, f"1,{BIG}", "1e3",
          "nan", "4,3,8,8;;", "((4,3,8,8))", "٤,٣,٨,٨", "\x00", "4,3,8", "2,4,8,8", "1,3,8,8"]  # fmt: skip
PATTERNS = ["", ",", "*", "backbone", "backbone.*", "fc", "nomatch", "[", "fc,,", "\x00", "a" * 3000, "é"]
FLOATS = ["nan", "inf", "-inf", "-1", "1e308", "1e999", "0", "abc", "", "5", "0.5", "0.01"]
INTS = ["-1", "0", "1", "2", BIG, "", "abc", "1.5"]
FITS = ["24", "24GiB", "t4", "", "-1GiB", "0GB", "1KiB", "0.5", "h200", "nan", BIG + "GiB", "24 parsecs", "1B"]
DTYPES = ["", "float8", "bf16", "int64", "bool", "float64", "complex64", "\x00", "torch.float16"]
DEVICES = ["", "cpu", "meta", "cuda", "cuda:99", "mps", "tpu", "cpu:1", "\x00"]
OUTPUTS = [NEW, MISSING, FOLDER, MODEL, WEIGHTS, FOREIGN, "", "\x00", "/dev/null", NEW + "\n"]
WEIGHT_FILES = [WEIGHTS, "", "nonexistent.pt", MODEL, JUNK, FOLDER, "\x00"]
ARGS = ["num_classes=-5", "=", "x", "a=b=c", "__class__=1", "n=" + "9" * 5000, "\x00=1", "num_classes=3"]
SPECS = [f"{MODEL}:SmallCNN"] * 6 + ["", ":", f"{MODEL}:", f"{MODEL}:Nope", "nonexistent.py:Net", "resnet1800",
                                     "\x00", f"{JUNK}", f"{WEIGHTS}", "builtins:dict", "math:pi"]  # fmt: skip

COMMON = {"--weights": WEIGHT_FILES, "--arg": ARGS, "--json": None, "--no-color": None, "--force": None,
          "--html": OUTPUTS, "--svg": OUTPUTS, "--freeze": PATTERNS, "--unfreeze": PATTERNS,
          "--freeze-backbone": None, "--unsafe-load": None}  # fmt: skip
STEP = {"--optimizer": ["sgd", "adam", "adamw", "", "lbfgs"], "--lr": FLOATS, "--momentum": FLOATS,
        "--weight-decay": FLOATS, "--train-bn": None, "--eval-bn": None}  # fmt: skip
COMMANDS: dict[str, dict[str, list[str] | None]] = {
    "tree": {**COMMON, "--device": DEVICES, "--depth": INTS, "--grep": PATTERNS, "--expand": None},
    "summary": {**COMMON, "--input-size": SHAPES, "--dtype": DTYPES, "--device": DEVICES, "--depth": INTS,
                "--mode": ["train", "eval", "", "x"]},
    "activations": {**COMMON, "--input-size": SHAPES, "--dtype": DTYPES, "--modules": PATTERNS, "--grads": None},
    "stats": {**COMMON, "--device": DEVICES},
    "grads": {**COMMON, "--input-size": SHAPES, "--dtype": DTYPES, "--loss": ["auto", "ce", "", "l2"]},
    "check-freeze": {**COMMON, **STEP, "--input-size": SHAPES, "--steps": INTS},
    "report": {**COMMON, **STEP, "--input-size": SHAPES, "--dtype": DTYPES, "--page": OUTPUTS,
               "--modules": PATTERNS, "--no-check": None, "--seed": INTS},
    "memory": {**COMMON, "--input-size": [*SHAPES, "3,8,8", "3,224,224", "1,3,8,8", "8,3,8,8"],
               "--batch-size": INTS, "--fit": FITS, "--dtype": DTYPES, "--device": DEVICES,
               "--optimizer": ["sgd", "sgd-momentum", "adam", "adamw", "", "lbfgs"],
               "--amp": ["off", "bf16", "fp16", "", "fp8"], "--mode": ["train", "eval", "", "x"],
               "--steps": INTS, "--channels-last": None, "--grad-checkpointing": None},
    "models": {"--grep": PATTERNS, "--json": None, "--no-color": None},
    "diff": {"--arch": ["resnet18", "", "resnet1800", f"{MODEL}:SmallCNN"], "--expect-frozen": PATTERNS,
             "--expand": None, "--json": None, "--html": OUTPUTS, "--svg": OUTPUTS, "--force": None,
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
    return line


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
        files = {
            "model": root / "net.py", "weights": root / "w.pt", "foreign": root / "notes.html",
            "junk": root / "junk.pt", "folder": root / "dir", "missing": root / "no" / "out.html",
            "new": root / "out.html",
        }  # fmt: skip
        files["model"].write_text(ZOO.read_text(encoding="utf-8"), encoding="utf-8")
        torch.save(SmallCNN().state_dict(), files["weights"])
        files["foreign"].write_text("not ours\n")
        files["junk"].write_bytes(b"\x80\x02" + os.urandom(200))  # starts like a pickle
        files["folder"].mkdir()
        args = [a.format(**{k: str(v) for k, v in files.items()}) for a in line]
        inputs = [files[k] for k in ("model", "weights", "foreign", "junk")]
        before = [digest(p) for p in inputs]
        cwd = os.getcwd()
        os.chdir(root)
        try:
            result = cli(*args)
        finally:
            os.chdir(cwd)
        shown = f"torchscope {' '.join(map(repr, args))}\n{result.output}"
        assert "Traceback" not in result.output, shown
        assert result.exit_code in ((0, 1, 2) if line[0] in CHECKS else (0, 2)), shown
        if result.exit_code == 2:
            assert result.stdout == "", shown  # a failed command prints no numbers
            assert result.stderr.strip(), shown
        assert [digest(p) for p in inputs] == before, shown
