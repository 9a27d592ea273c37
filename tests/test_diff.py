"""diff_checkpoints and its tree view: unchanged / changed / missing / added / shape_changed by tensor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rendering import text
from zoo import SmallCNN

from torchscope import diff_checkpoints
from torchscope.errors import PatternError, SpecError
from torchscope.render.diff import render_diff


def _pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    a = SmallCNN().state_dict()
    b = {k: v.clone() for k, v in a.items()}
    return a, b


def _status(report) -> dict[str, str]:
    return {t["name"]: t["status"] for t in report.to_dict()["tensors"]}


def test_every_status_with_sizes_of_change() -> None:
    a, b = _pair()
    b["fc.weight"] = a["fc.weight"] * 1.5
    del b["fc.bias"]
    b["fc.extra"] = torch.ones(2)
    b["backbone.0.bias"] = torch.zeros(9)
    report = diff_checkpoints(a, b)
    status = _status(report)
    assert status["fc.weight"] == "changed" and status["fc.bias"] == "missing"
    assert status["fc.extra"] == "added" and status["backbone.0.bias"] == "shape_changed"
    assert status["backbone.0.weight"] == "unchanged"
    d = report.to_dict()
    assert d["counts"] == {"unchanged": 13, "changed": 1, "missing": 1, "added": 1, "shape_changed": 1}
    fc = next(t for t in d["tensors"] if t["name"] == "fc.weight")
    assert fc["max_abs"] == pytest.approx(0.5 * a["fc.weight"].abs().max().item())
    assert fc["rel_change"] == pytest.approx(0.5)
    shape = next(t for t in d["tensors"] if t["name"] == "backbone.0.bias")
    assert (shape["shape_a"], shape["shape_b"]) == ([8], [9])
    assert d["ok"] is True  # nothing was expected frozen


def test_expect_frozen_selects_tensors_and_decides_ok() -> None:
    a, b = _pair()
    b["fc.weight"] += 1
    assert diff_checkpoints(a, b, expect_frozen="backbone").ok
    b["backbone.1.running_mean"] += 1e-6  # BatchNorm stats moved during the fine-tune
    report = diff_checkpoints(a, b, expect_frozen=["backbone.*"])
    assert not report.ok and report.to_dict()["violations"] == ["backbone.1.running_mean"]
    with pytest.raises(PatternError, match="pattern 'bakbone' matches no checkpoint tensor; did you mean 'backbone'"):
        diff_checkpoints(a, b, expect_frozen="bakbone")


def test_nan_in_the_same_place_is_unchanged_new_nan_is_changed() -> None:
    a = {"w": torch.tensor([1.0, float("nan"), 3.0])}
    assert _status(diff_checkpoints(a, {"w": a["w"].clone()})) == {"w": "unchanged"}
    b = {"w": torch.tensor([float("nan"), float("nan"), 3.0])}
    report = diff_checkpoints(a, b)
    (entry,) = report.entries
    # the new NaN is said in words; max |Δ| covers the values finite on both sides
    assert entry.status == "changed" and entry.nonfinite == (("became_nan", 1),) and entry.max_abs == 0.0


def test_files_wrappers_and_prefixes(tmp_path: Path) -> None:
    a, b = _pair()
    b["fc.bias"] += 1
    pa, pb = tmp_path / "pretrained.pt", tmp_path / "finetuned.pt"
    torch.save(a, pa)
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in b.items()}}, pb)  # a DDP training checkpoint
    report = diff_checkpoints(pa, pb, expect_frozen="backbone")
    assert report.ok and report.a == str(pa)
    assert [e.name for e in report.entries if e.status == "changed"] == ["fc.bias"]


def test_whole_model_files_need_unsafe_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SmallCNN()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with pytest.raises(SpecError, match="pass --unsafe-load"):
        diff_checkpoints(path, model.state_dict())
    assert diff_checkpoints(path, model.state_dict(), unsafe_load=True).counts["unchanged"] == 16
    with pytest.raises(SpecError, match=r"checkpoint not found: .*nope\.pt; check the path"):
        diff_checkpoints(tmp_path / "nope.pt", path)


def test_arch_names_module_types_and_strips_foreign_prefixes() -> None:
    torch.manual_seed(0)
    import torchvision

    a = torchvision.models.resnet18(num_classes=4).state_dict()
    b = {"model." + k: v.clone() for k, v in a.items()}  # a Lightning checkpoint keeps the attribute name
    b["model.layer4.1.bn2.running_var"] += 0.5
    report = diff_checkpoints(a, b, arch="resnet18", expect_frozen="layer1,layer2,layer3")
    assert report.ok and report.not_in_arch == ()
    changed = [e for e in report.entries if e.status == "changed"]
    assert [(e.name, e.module_type) for e in changed] == [("layer4.1.bn2.running_var", "BatchNorm2d")]


def test_render_tree_folds_unchanged_modules() -> None:
    a, b = _pair()
    b["fc.weight"] = a["fc.weight"] * 2
    b["backbone.4.running_var"] = a["backbone.4.running_var"] + 0.25
    assert text(render_diff(diff_checkpoints(a, b, expect_frozen="backbone"))).splitlines() == [
        "A → B",
        "├── backbone",
        "│   ├── 0  2 unchanged  ✓ 2 expected frozen",
        "│   ├── 1  5 unchanged  ✓ 5 expected frozen",
        "│   ├── 3  2 unchanged  ✓ 2 expected frozen",
        "│   └── 4",
        "│       ├── weight  unchanged  ✓ frozen",
        "│       ├── bias  unchanged  ✓ frozen",
        "│       ├── running_mean  unchanged  ✓ frozen",
        "│       ├── running_var  changed  max |Δ| 0.25  rel 0.25  ✗ expected frozen",
        "│       └── num_batches_tracked  unchanged  ✓ frozen",
        "└── fc",
        f"    ├── weight  changed  max |Δ| {a['fc.weight'].abs().max().item():.3g}  rel 1",
        "    └── bias  unchanged",
        "14 unchanged  2 changed  0 missing  0 added  0 shape changed",
        "✗ 1 expected-frozen tensor(s) changed: backbone.4.running_var",
    ]
