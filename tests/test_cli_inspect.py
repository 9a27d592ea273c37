from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from typer.testing import Result

CliRun = Callable[..., Result]  # the `cli` fixture of conftest


ZOO_PY = str(Path(__file__).parent / "zoo.py")
CNN = f"{ZOO_PY}:SmallCNN"


def test_summary_table_and_json(cli: CliRun) -> None:
    result = cli("summary", CNN, "--input-size", "2,3,8,8", "--no-color")
    assert result.exit_code == 0, result.output
    assert "FLOPs: 202.85 K (mult-adds: 101.42 K), mode: eval" in result.stdout
    assert "    0 (Conv2d)" in result.stdout
    result = cli("summary", CNN, "--input-size", "2,3,8,8", "--json", "--mode", "train")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mode"] == "train" and data["total_flops"] == 2 * data["total_mult_adds"] == 202848
    assert data["outputs"] == [{"name": "output", "shape": [2, 3], "dtype": "float32"}]


def test_summary_of_a_torchvision_model_uses_its_crop_size(cli: CliRun) -> None:
    result = cli("summary", "squeezenet1_1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["inputs"][0]["shape"] == [1, 3, 224, 224]
    assert abs(data["total_mult_adds"] / 0.349e9 - 1) < 0.02  # torchvision's published 0.35 GFLOPS


def test_failing_forward_prints_no_numbers_and_exits_2(cli: CliRun) -> None:
    for extra in ([], ["--json"]):
        result = cli("summary", CNN, "--input-size", "2,4,8,8", "--no-color", *extra)
        assert result.exit_code == 2
        assert result.stdout == ""  # no partial table, no partial total, no partial JSON document
        assert result.stderr.startswith(
            "error: forward pass failed in backbone.0 (Conv2d) given [2, 4, 8, 8]"
        )
        assert "Traceback" not in result.output


def test_bad_input_size_exits_2(cli: CliRun) -> None:
    result = cli("summary", CNN, "--input-size", "2,x")
    assert result.exit_code == 2
    assert (
        result.stderr
        == "error: --input-size '2,x' is not a list of integers; write e.g. 1,3,224,224 or 1x3x224x224 "
        "(several inputs: 1,3,8,8;1,10)\n"
    )


def test_activations_with_modules_grads_and_timing(cli: CliRun) -> None:
    result = cli(
        "activations",
        CNN,
        "--input-size",
        "4,3,8,8",
        "--modules",
        "backbone.2,fc",
        "--grads",
        "--timing",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [c["module"] for c in data["calls"]] == ["backbone.2", "fc"]
    assert all(c["grad"] is not None and c["time_ms"] is not None for c in data["calls"])
    table = cli("activations", CNN, "--input-size", "4,3,8,8", "--no-color")
    assert table.exit_code == 0 and "backbone.2  ReLU" in table.stdout
    bad = cli("activations", CNN, "--input-size", "4,3,8,8", "--modules", "layer9")
    assert bad.exit_code == 2 and "pattern 'layer9' matches no module" in bad.stderr


def test_stats_reads_weights_file(tmp_path: Path, cli: CliRun) -> None:
    from zoo import SmallCNN

    model = SmallCNN()
    with torch.no_grad():
        model.fc.bias.fill_(float("nan"))
    path = tmp_path / "ft.pt"
    torch.save(model.state_dict(), path)
    result = cli("stats", CNN, "--weights", str(path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["fc.bias"]["nan_count"] == 3
    assert data["flags"] == ["fc.bias: 3 NaN, 0 Inf values"]
    table = cli("stats", CNN, "--weights", str(path), "--no-color")
    assert table.exit_code == 0 and "fc.bias: 3 NaN, 0 Inf values" in table.stdout


def test_grads_with_freeze(cli: CliRun) -> None:
    result = cli("grads", CNN, "--input-size", "4,3,8,8", "--freeze", "backbone.0", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["frozen"] == 224 and data["unused"] == []
    layers = {la["name"]: la for la in data["layers"]}
    assert layers["backbone.0"]["grad_norm"] is None and layers["fc"]["grad_norm"] > 0
    table = cli("grads", CNN, "--input-size", "4,3,8,8", "--no-color")
    assert table.exit_code == 0 and "Loss: cross_entropy" in table.stdout
    bad = cli("grads", CNN, "--input-size", "4,3,8,8", "--loss", "l2")
    assert bad.exit_code == 2 and "loss='l2' must be" in bad.stderr
