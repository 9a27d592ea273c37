from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from rendering import row_names
from typer.testing import Result
from zoo import SmallCNN

from torchscope import load_model, tree

ZOO_PY = str(Path(__file__).parent / "zoo.py")

CliRun = Callable[..., Result]  # the `cli` fixture of conftest


def test_tree_resnet18_renders_totals(cli: CliRun) -> None:
    result = cli("tree", "resnet18", "--no-color")
    assert result.exit_code == 0, result.output
    assert "├── layer1" in result.stdout
    assert "Total params:                      11.7 M" in result.stdout
    assert "Devices:                           meta" in result.stdout


def test_tree_json_round_trip_equals_to_dict(cli: CliRun) -> None:
    result = cli("tree", "resnet18", "--json")
    assert result.exit_code == 0, result.output
    expected = tree(load_model("resnet18", device="meta")).to_dict()
    assert json.loads(result.stdout) == expected
    assert expected["total_params"] == 11_689_512


def test_tree_vit_h_14_depth_2_collapses_encoder_layers(cli: CliRun) -> None:
    result = cli("tree", "vit_h_14", "--depth", "2", "--no-color")
    assert result.exit_code == 0, result.output
    assert row_names(result.stdout) == [
        "(model)",
        "conv_proj",
        "encoder",
        "dropout",
        "layers",
        "ln",
        "heads",
        "head",
    ]
    assert "Total params:                      633 M" in result.stdout
    deeper = cli("tree", "vit_h_14", "--depth", "3", "--no-color")
    assert "│   │   └── encoder_layer_0-31   EncoderBlock ×32     630 M       ✓       train" in deeper.stdout


def test_tree_freeze_options_then_json(tmp_path: Path, cli: CliRun) -> None:
    result = cli("tree", f"{ZOO_PY}:SmallCNN", "--freeze", "backbone.0,backbone.1", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["frozen_params"] == 8 * 3 * 9 + 8 + 16
    result = cli("tree", "resnet18", "--freeze-backbone", "--unfreeze", "layer4.*", "--json")
    d = json.loads(result.stdout)
    by_name = {m["name"]: m["freeze"] for m in d["modules"]}
    assert by_name["layer4"] == "trainable" and by_name["fc"] == "trainable" and by_name["layer1"] == "frozen"


def test_tree_weights_arg_and_device_cpu(tmp_path: Path, cli: CliRun) -> None:
    path = tmp_path / "ft.pt"
    torch.save(SmallCNN(num_classes=5).state_dict(), path)
    result = cli(
        "tree",
        f"{ZOO_PY}:SmallCNN",
        "--arg",
        "num_classes=5",
        "--weights",
        str(path),
        "--device",
        "cpu",
        "--json",
    )
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["devices"] == ["cpu"] and d["modules"][-1]["params"] == 8 * 5 + 5


def test_tree_display_options(cli: CliRun) -> None:
    result = cli("tree", "resnet18", "--grep", "downsample", "--no-color")
    assert result.exit_code == 0, result.output
    assert row_names(result.stdout)[:6] == ["(model)", "layer2", "0", "downsample", "0", "1"]
    assert "layer1" not in result.stdout
    result = cli("tree", "resnet18", "--freeze-backbone", "--trainable-only", "--no-color")
    assert row_names(result.stdout) == ["(model)", "fc"]
    expanded = cli("tree", "resnet18", "--expand", "--depth", "2", "--no-color")
    assert row_names(expanded.stdout)[5:9] == ["layer1", "0", "1", "layer2"]
    assert "×2" not in expanded.stdout


def test_tree_html_and_svg(tmp_path: Path, cli: CliRun) -> None:
    html, svg = tmp_path / "t.html", tmp_path / "t.svg"
    result = cli("tree", "resnet18", "--depth", "1", "--console-html", str(html), "--svg", str(svg))
    assert result.exit_code == 0, result.output
    assert "layer4" in html.read_text() and svg.read_text().startswith("<svg")


def test_models_lists_and_greps(cli: CliRun) -> None:
    result = cli("models", "--grep", "vit", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["names"] == [
        n for n in sorted(torchvision.models.list_models()) if "vit" in n
    ]
    plain = cli("models", "--grep", "resnet1*")
    assert plain.exit_code == 0 and "resnet18" in plain.stdout and "wide_resnet" not in plain.stdout


def test_models_timm(cli: CliRun) -> None:
    pytest.importorskip("timm")
    result = cli("models", "--timm", "--grep", "timm:resnet18*", "--json")
    assert result.exit_code == 0, result.output
    assert "timm:resnet18" in json.loads(result.stdout)["names"]
    missing = cli("models", "--grep", "timm:resnet18")
    assert missing.exit_code == 2 and "add --timm to list timm models" in missing.stderr


# --- bad input: one line on stderr, exit 2, no traceback ---------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint\n")
    sd = tmp_path / "sd.pt"
    torch.save(SmallCNN().state_dict(), sd)
    whole = tmp_path / "whole.pt"
    torch.save(SmallCNN(), whole)
    return {"notes": str(notes), "sd": str(sd), "whole": str(whole), "dir": str(tmp_path)}


BAD = [
    (["tree", "resnet1800"], r"unknown model 'resnet1800'; did you mean 'resnet18'"),
    (["tree", "a:b:c"], r"malformed spec 'a:b:c'"),
    (["tree", "{dir}/missing.pt"], r"file not found: .*missing.pt"),
    (["tree", "{notes}"], r"notes.pt is not a PyTorch checkpoint"),
    (["tree", "{sd}"], r"holds a state_dict, which needs an architecture"),
    (["tree", "{whole}"], r"pass --unsafe-load"),
    (["tree", "resnet18", "--weights", "{sd}"], r"does not fit ResNet: missing keys \[conv1.weight"),
    (["tree", "resnet18", "--weights", "{dir}/nope.pt"], r"weights file not found"),
    (["tree", "resnet18", "--arg", "num_classes"], r"--arg 'num_classes' must look like key=value"),
    (["tree", "resnet18", "--arg", "bogus=1"], r"building resnet18\(bogus=1\) failed"),
    (["tree", "resnet18", "--depth", "-1"], r"depth=-1 must be >= 0"),
    (["tree", "resnet18", "--freeze", "layer9.*"], r"pattern 'layer9.\*' matches no parameter"),
    (["tree", "resnet18", "--grep", "zzz"], r"--grep 'zzz' matches no module"),
    (["tree", "resnet18", "--trainable-only", "--frozen-only"], r"exclude each other"),
    (["tree", "resnet18", "--device", "gpu0"], r"--device 'gpu0' is not a device; use cpu, meta, cuda, cuda:N or mps"),
    (["tree", "no_such_pkg_xyz.models:Net"], r"cannot import 'no_such_pkg_xyz.models'"),
    (["tree", "tests/zoo.py:Nope"], r"has no attribute 'Nope'"),
    (["tree", "resnet18", "--pretrained"], r"--pretrained: .*resnet18-f37072fd.pth not found"),
    (["models", "--grep", "zzz"], r"--grep 'zzz' matches no model name"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(
    args: list[str],
    message: str,
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: CliRun,
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    result = cli(*[a.format(**files) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    import re

    assert re.search(message, lines[0]), lines[0]


def test_timm_missing_exits_2(monkeypatch: pytest.MonkeyPatch, cli: CliRun) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)
    result = cli("tree", "timm:resnet18")
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "error: 'timm:resnet18' needs timm, which is not installed; pip install timm"
    )


def test_help_of_every_command_shows_flags_without_a_type(cli: CliRun) -> None:
    import typer

    from torchscope.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ["", *commands]:
        result = cli(*([name] if name else []), "--help", terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.stdout and "--help" in result.stdout, name
    tree_help = cli("tree", "--help", terminal_width=200).stdout
    assert "<bool>" not in tree_help
    assert " --freeze-backbone   " in tree_help and "--input-size" not in tree_help
    assert "--input-size" in cli("summary", "--help", terminal_width=200).stdout
