"""What a user can lose or be misled by at the command line: files, stdout, numbers (issue 15)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import Result
from zoo import SmallCNN

from torchscope.cli._output import MARKER, OutputPathError, to_json, write_files

CliRun = Callable[..., Result]  # the `cli` fixture of conftest
ZOO = Path(__file__).parent / "zoo.py"
CNN = f"{ZOO}:SmallCNN"


def strict_json(text: str) -> object:
    """Parse as RFC 8259 JSON: a bare NaN or Infinity is an error."""

    def reject(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(ZOO.read_text(encoding="utf-8"), encoding="utf-8")
    return path


# -- nothing lost ------------------------------------------------------------------------------------
def test_an_output_over_the_models_own_file_is_refused_even_with_force(cli: CliRun, model_file: Path) -> None:
    before = model_file.read_bytes()
    for extra in ([], ["--force"]):
        result = cli("tree", f"{model_file}:SmallCNN", "--console-html", model_file, *extra)
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == (
            f"error: --console-html {str(model_file)!r} is an input of this command; write the output to another file\n"
        )
    assert model_file.read_bytes() == before


def test_an_output_over_the_weights_being_read_is_refused(cli: CliRun, tmp_path: Path) -> None:
    ckpt = tmp_path / "ft.pt"
    torch.save(SmallCNN().state_dict(), ckpt)
    before = ckpt.read_bytes()
    for command in ("stats", "tree"):
        result = cli(command, CNN, "--weights", ckpt, "--svg", ckpt, "--force")
        assert result.exit_code == 2 and "is an input of this command" in result.stderr
    result = cli("report", CNN, "--input-size", "4,3,8,8", "--weights", ckpt, "--page", ckpt)
    assert result.exit_code == 2 and "is an input of this command" in result.stderr
    assert ckpt.read_bytes() == before


def test_a_file_we_did_not_write_needs_force_and_ours_is_rewritten(cli: CliRun, tmp_path: Path) -> None:
    notes = tmp_path / "notes.html"
    notes.write_text("my own notes\n")
    refused = cli("tree", CNN, "--console-html", notes)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "exists and was not written by torchscope; pick a new file, or add --force" in refused.stderr
    assert notes.read_text() == "my own notes\n"
    forced = cli("tree", CNN, "--console-html", notes, "--force")
    assert forced.exit_code == 0, forced.output
    html = notes.read_text()
    assert html.startswith("<!DOCTYPE html>") and MARKER in html[:200] and "backbone" in html
    again = cli("tree", CNN, "--console-html", notes)  # our own file: a rerun may replace it
    assert again.exit_code == 0, again.output
    svg = tmp_path / "t.svg"
    assert cli("tree", CNN, "--svg", svg).exit_code == 0
    assert svg.read_text().startswith("<svg") and cli("tree", CNN, "--svg", svg).exit_code == 0


def test_one_bad_output_path_writes_no_output_and_prints_nothing(cli: CliRun, tmp_path: Path) -> None:
    good, bad = tmp_path / "t.html", tmp_path / "missing" / "t.svg"
    for command in (["tree", CNN], ["summary", CNN, "--input-size", "2,3,8,8"], ["stats", CNN]):
        result = cli(*command, "--console-html", good, "--svg", bad, "--json")
        assert result.exit_code == 2 and result.stdout == ""
        assert f"--svg {str(bad)!r}: folder {str(bad.parent)!r} does not exist" in result.stderr
        assert list(tmp_path.iterdir()) == []  # neither the good file nor a temporary


def test_two_outputs_on_one_path_and_a_folder_are_refused(cli: CliRun, tmp_path: Path) -> None:
    same = tmp_path / "t.html"
    result = cli("tree", CNN, "--console-html", same, "--svg", same)
    assert result.exit_code == 2 and "--svg" in result.stderr and "is also --console-html" in result.stderr
    result = cli("tree", CNN, "--console-html", tmp_path)
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_write_files_replaces_all_or_nothing(tmp_path: Path) -> None:
    first = tmp_path / "a.html"
    first.write_text("old")
    with pytest.raises(OutputPathError, match="cannot write output file"):
        write_files({first: "new", tmp_path / "gone" / "b.svg": "x"})
    assert first.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.html"]
    write_files({first: "new", tmp_path / "b.svg": "x"})
    assert first.read_text() == "new" and (tmp_path / "b.svg").read_text() == "x"


# -- JSON on stdout is JSON, and only JSON ----------------------------------------------------------
NOISY = """\
import torch
print("hello from import")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x):
        print("in forward")
        return self.fc(x)
"""


@pytest.mark.parametrize(
    "command",
    [
        ["summary", "--input-size", "2,3"],
        ["summary", "--input-size", "2,3", "--device", "cpu"],
        ["activations", "--input-size", "2,3"],
        ["grads", "--input-size", "2,3"],
        ["stats"],
        ["tree"],
        ["check-freeze", "--input-size", "2,3", "--freeze", "fc.bias"],
        ["report", "--input-size", "2,3", "--freeze", "fc.bias"],
    ],
)
def test_what_the_model_prints_goes_to_stderr_under_json(
    cli: CliRun, tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "noisy.py"
    path.write_text(NOISY)
    name, *options = command
    result = cli(name, f"{path}:Net", *options, "--json")
    assert result.exit_code == 0, result.output
    assert isinstance(strict_json(result.stdout), dict)
    assert "hello from import" in result.stderr


def test_nan_and_inf_are_valid_json_strings_in_every_command(cli: CliRun, tmp_path: Path) -> None:
    model = SmallCNN()
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([float("nan"), float("inf"), float("-inf")]))
    ckpt = tmp_path / "bad.pt"
    torch.save(model.state_dict(), ckpt)
    result = cli("stats", CNN, "--weights", ckpt, "--json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    rows = {r["name"]: r for r in data["rows"]}  # type: ignore[index]
    assert (rows["fc.bias"]["max"], rows["fc.bias"]["min"]) == ("NaN", "NaN")  # a NaN among the values makes both NaN
    grads = cli("grads", CNN, "--weights", ckpt, "--input-size", "4,3,8,8", "--json")
    assert grads.exit_code == 0, grads.output  # grads reports the NaN; it checks no invariant
    strict_json(grads.stdout)  # the loss is NaN: still JSON
    assert to_json([float("nan"), float("inf"), -float("inf"), 1.5]).split() == [
        "[",
        '"NaN",',
        '"Infinity",',
        '"-Infinity",',
        "1.5",
        "]",
    ]


# -- bad values: one line, exit 2, no numbers ---------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["summary", CNN, "--input-size", "1,3,100000,100000", "--device", "cpu"],
            "for the inputs alone, more than the",
        ),
        (
            ["grads", CNN, "--input-size", "1,3,100000,100000"],
            "run `torchscope memory` to see what a run needs",
        ),
        (
            ["activations", CNN, "--input-size", "99999999999,99999999999,99999"],
            "more than a tensor can hold",
        ),
        (["summary", CNN, "--input-size", "1,3,9223372036854775808"], "more than a tensor can hold"),
        (["summary", CNN, "--input-size", ""], "--input-size '' is empty"),
        (["report", CNN, "--input-size", " "], "--input-size ' ' is empty"),
        (["tree", CNN, "--freeze", ""], "--freeze '' has an empty pattern"),
        (["tree", CNN, "--freeze", ","], "--freeze ',' has an empty pattern"),
        (
            ["grads", CNN, "--input-size", "4,3,8,8", "--unfreeze", "fc,,"],
            "--unfreeze 'fc,,' has an empty pattern",
        ),
        (
            ["activations", CNN, "--input-size", "4,3,8,8", "--modules", ""],
            "--modules '' has an empty pattern",
        ),
        (["summary", CNN, "--input-size", "2,3,8,8", "--depth", "-2"], "depth=-2 must be >= 0"),
        (["summary", CNN, "--input-size", "2,3,8,8", "--dtype", "float8"], "unknown dtype 'float8'"),
        (
            ["summary", CNN, "--input-size", "2,3,8,8", "--mode", "sideways"],
            "--mode 'sideways' must be train or eval",
        ),
    ],
)
def test_bad_values_are_one_line_exit_2_and_no_numbers(cli: CliRun, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr


def test_an_absurd_depth_shows_everything(cli: CliRun) -> None:
    huge = str(10**30)
    for command in (["tree", CNN], ["summary", CNN, "--input-size", "2,3,8,8"]):
        deep = cli(*command, "--depth", huge, "--no-color")
        assert deep.exit_code == 0, deep.output
        assert deep.stdout == cli(*command, "--no-color").stdout


def test_both_input_size_spellings_work_in_every_command(cli: CliRun) -> None:
    for command in (
        ["summary"],
        ["activations"],
        ["grads"],
        ["check-freeze", "--freeze", "fc"],
        ["report", "--no-check"],
    ):
        name, *rest = command
        comma = cli(name, CNN, *rest, "--input-size", "4,3,8,8", "--json")
        times = cli(name, CNN, *rest, "--input-size", "4x3x8x8", "--json")
        assert comma.exit_code == times.exit_code == 0, comma.output + times.output
        a, b = strict_json(comma.stdout), strict_json(times.stdout)
        for key in ("inputs", "input_size", "total_mult_adds"):
            if isinstance(a, dict) and key in a:
                assert a[key] == b[key], (name, key)  # type: ignore[index]


# -- widths ------------------------------------------------------------------------------------------
NUMBER = re.compile(r"\d+(?:\.\d+)?")


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["tree", "resnet18", "--depth", "2"], 0),
        (["tree", CNN], 0),
        # the frozen backbone's BatchNorm runs in train mode in the reference step: its stats move
        (["report", CNN, "--input-size", "4,3,8,8", "--freeze", "backbone"], 1),
    ],
)
def test_numbers_never_wrap_at_60_80_or_200_columns(cli: CliRun, command: list[str], code: int) -> None:
    outputs = {}
    for width in (60, 80, 200):
        result = cli(*command, "--no-color", env={"COLUMNS": str(width)})
        assert result.exit_code == code, result.output
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= width
        # a narrow table names the columns it left out ("left out at 60 columns: Mode (in --json)")
        outputs[width] = [line for line in lines if not line.lstrip().startswith(f"left out at {width} columns")]
    # a number cut by a line break would show up as two numbers (or a shorter one)
    wide = Counter(n for line in outputs[200] for n in NUMBER.findall(line))
    for width in (60, 80):
        assert Counter(n for line in outputs[width] for n in NUMBER.findall(line)) == wide, width
