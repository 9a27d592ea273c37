"""`tree` of a torch.export archive names each module's class, as `summary` of the same file does."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from zoo import SmallCNN


def test_tree_of_an_export_archive_names_the_classes_summary_names(tmp_path: Path, cli) -> None:
    torch.manual_seed(0)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(SmallCNN().eval(), (torch.randn(2, 3, 8, 8),)), str(path))
    tree = cli("tree", path, "--json")
    summary = cli("summary", path, "--input-size", "2,3,8,8", "--json")
    assert tree.exit_code == 0 and summary.exit_code == 0, tree.output + summary.output
    t, s = json.loads(tree.stdout), json.loads(summary.stdout)
    types = {m["name"]: m["type"] for m in t["modules"]}
    assert t["model_type"] == "SmallCNN" and types[""] == "SmallCNN"
    assert types["backbone"] == "Sequential" and types["backbone.0"] == "Conv2d"
    assert types["backbone.1"] == "BatchNorm2d" and types["fc"] == "Linear"
    # the program keeps only modules with state (a ReLU is in the graph, not a module): those agree
    assert all(types[r["name"]] == r["type"] for r in s["rows"] if r["name"] in types)
