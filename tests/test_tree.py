from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rendering import row_names, text
from torch import nn
from zoo import build

from torchscope import TorchscopeError, capture_state, freeze, tree
from torchscope.errors import PatternError
from torchscope.render.tree import render_tree

# --- the collector -------------------------------------------------------------------------------


def test_exact_dict_of_a_small_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    model[0].weight.requires_grad_(False)
    d = tree(model).to_dict()
    hooks = {"forward": 0, "forward_pre": 0, "backward": 0, "state_dict": 0, "load_state_dict": 0, "tensor": 0}
    assert {k: v for k, v in d.items() if k != "modules"} == {
        "schema": "torchscope.tree/1",
        "model_type": "Sequential",
        "wrappers": [],
        "total_params": 15,
        "trainable_params": 9,
        "frozen_params": 6,
        "total_buffers": 7,
        "param_bytes": [["float32", 60]],
        "buffer_bytes": [["float32", 24], ["int64", 8]],
        "devices": ["cpu"],
        "modules_in_train_mode": 3,
        "modules_in_eval_mode": 0,
        "tied": [],
        "global_hooks": 0,
        "warnings": [],
        "adapters": [],
    }
    rows = [{k: v for k, v in m.items() if k != "signature"} for m in d["modules"]]
    assert rows == [
        {
            "name": "",
            "type": "Sequential",
            "depth": 0,
            "params": 15,
            "own_params": 0,
            "trainable_params": 9,
            "frozen_params": 6,
            "buffers": 7,
            "training": True,
            "freeze": "partial",
            "hooks": hooks,
            "aliases": [],
            "extra": "",
        },
        {
            "name": "0",
            "type": "Linear",
            "depth": 1,
            "params": 9,
            "own_params": 9,
            "trainable_params": 3,
            "frozen_params": 6,
            "buffers": 0,
            "training": True,
            "freeze": "partial",
            "hooks": hooks,
            "aliases": [],
            "extra": "in_features=2, out_features=3, bias=True",
        },
        {
            "name": "1",
            "type": "BatchNorm1d",
            "depth": 1,
            "params": 6,
            "own_params": 6,
            "trainable_params": 6,
            "frozen_params": 0,
            "buffers": 7,
            "training": True,
            "freeze": "trainable",
            "hooks": hooks,
            "aliases": [],
            "extra": "3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True",
        },
    ]


def test_json_round_trip(zoo_model: tuple[nn.Module, object]) -> None:
    model, _ = zoo_model
    d = tree(model).to_dict()
    assert json.loads(json.dumps(d)) == d


def test_tied_weights_counted_once() -> None:
    model, _ = build("tied")
    d = tree(model).to_dict()
    assert (
        d["total_params"]
        == 20 * 8 + 8 * 8 + 8
        == sum({id(p): p.numel() for p in model.parameters()}.values())
    )
    assert d["tied"] == [["embed.weight", "out.weight"]]
    by_name = {m["name"]: m for m in d["modules"]}
    assert by_name[""]["params"] == 232 and by_name["out"]["params"] == 160


def test_shared_child_listed_once_with_other_name() -> None:
    model, _ = build("shared_child")
    d = tree(model).to_dict()
    assert [(m["name"], m["aliases"]) for m in d["modules"]] == [("", []), ("block", ["again"]), ("head", [])]
    assert d["total_params"] == 6 * 6 + 6 + 6 * 2 + 2
    assert d["modules_in_train_mode"] == 3


def test_freeze_states_and_counts() -> None:
    model, _ = build("small_cnn")
    freeze(model, "backbone")
    d = tree(model).to_dict()
    by_name = {m["name"]: m for m in d["modules"]}
    assert by_name[""]["freeze"] == "partial"
    assert by_name["backbone"]["freeze"] == "frozen"
    assert by_name["backbone.2"]["freeze"] == "none"
    assert by_name["fc"]["freeze"] == "trainable"
    assert d["trainable_params"] == 8 * 3 + 3
    assert d["frozen_params"] == d["total_params"] - 27


def test_existing_hooks_are_counted_and_kept() -> None:
    model, _ = build("small_cnn")
    model.fc.register_forward_hook(lambda *a: None)
    model.fc.register_forward_hook(lambda *a: None)
    model.backbone.register_forward_pre_hook(lambda *a: None)
    model.register_full_backward_hook(lambda *a: None)
    model.register_state_dict_post_hook(lambda *a: None) if hasattr(
        model, "register_state_dict_post_hook"
    ) else model._register_state_dict_hook(lambda *a: None)
    before = capture_state(model)
    d = tree(model).to_dict()
    by_name = {m["name"]: m["hooks"] for m in d["modules"]}
    assert by_name["fc"]["forward"] == 2
    assert by_name["backbone"]["forward_pre"] == 1
    assert by_name[""]["backward"] == 1 and by_name[""]["state_dict"] == 1
    assert capture_state(model).differences(before) == []


def test_tensor_hooks_on_parameters_are_counted_on_their_module() -> None:
    model, _ = build("small_cnn")
    model.fc.weight.register_hook(lambda g: g)
    model.fc.bias.register_post_accumulate_grad_hook(lambda p: None)
    by_name = {m["name"]: m["hooks"] for m in tree(model).to_dict()["modules"]}
    assert by_name["fc"]["tensor"] == 2 and by_name[""]["tensor"] == 0
    out = text(render_tree(tree(model)))
    assert next(line for line in out.splitlines() if "fc" in line).rstrip().endswith("2 tensor")


def test_global_hooks_counted() -> None:
    handle = nn.modules.module.register_module_forward_hook(lambda *a: None)
    try:
        assert tree(nn.Linear(2, 2)).global_hooks == 1
    finally:
        handle.remove()


def test_warnings_as_data() -> None:
    model, _ = build("small_cnn")
    freeze(model, "backbone.1")
    model.backbone[4].eval()
    d = tree(model).to_dict()
    assert [(w["kind"], w["module"]) for w in d["warnings"]] == [
        ("norm_stats_drift", "backbone.1"),
        ("eval_in_train", "backbone.4"),
    ]
    assert "its running stats still change" in d["warnings"][0]["message"]
    assert d["modules_in_eval_mode"] == 1
    # a frozen norm layer held in eval is the fix for drifting stats: no warning of either kind
    model.backbone[1].eval()
    assert [(w.kind, w.module) for w in tree(model).warnings] == [("eval_in_train", "backbone.4")]
    # a model in eval mode has no eval-in-train warning, and frozen norms in eval do not drift
    model.eval()
    assert tree(model).warnings == ()


def test_lazy_module_counts_zero_and_warns() -> None:
    model, _ = build("lazy")
    t = tree(model)
    assert t.total_params == 4 * 2 + 2
    assert [w.kind for w in t.warnings] == ["lazy_params"]


def test_bytes_by_dtype_and_devices_on_meta() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2).half())
    t = tree(model)
    assert t.param_bytes == (("float32", 80), ("float16", 20))
    assert t.devices == ("meta",)
    assert t.total_param_bytes == 100


def test_wrappers_are_unwrapped_and_named() -> None:
    model, _ = build("small_cnn")
    t = tree(torch.compile(nn.DataParallel(model)))
    assert t.wrappers == ("torch.compile", "DataParallel")
    assert t.model_type == "SmallCNN"
    assert t.modules[1].name == "backbone"


def test_ddp_is_unwrapped_and_named(tmp_path: Path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model, _ = build("small_cnn")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        t = tree(torch.compile(DistributedDataParallel(model)))
    finally:
        dist.destroy_process_group()
    assert t.wrappers == ("torch.compile", "DistributedDataParallel")
    assert t.model_type == "SmallCNN"
    assert [m.name for m in t.modules] == [m.name for m in tree(model).modules]


def test_identical_blocks_share_a_signature() -> None:
    model, _ = build("stacked")
    entries = {m.name: m for m in tree(model).modules}
    assert len({entries[f"0.{i}"].signature for i in range(12)}) == 1
    model[0][3][0].weight.requires_grad_(False)
    entries = {m.name: m for m in tree(model).modules}
    assert entries["0.3"].signature != entries["0.2"].signature


def test_tree_leaves_model_unchanged(zoo_model: tuple[nn.Module, object]) -> None:
    model, example = zoo_model
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        model(example)  # capture_state cannot clone uninitialized lazy parameters
    model.fc.register_forward_hook(lambda *a: None) if hasattr(model, "fc") else None
    before = capture_state(model)
    tree(model)
    assert capture_state(model).differences(before) == []


def test_tree_rejects_non_module() -> None:
    with pytest.raises(TorchscopeError, match=r"tree\(\) takes an nn.Module, got str"):
        tree("resnet18")  # type: ignore[arg-type]


# --- the renderer --------------------------------------------------------------------------------


def test_render_collapses_identical_blocks() -> None:
    model, _ = build("stacked")
    out = text(render_tree(tree(model)))
    assert out.splitlines()[:6] == [
        "Name           Type             Params   Trainable   Mode",
        "──────────────────────────────────────────────────────────",
        "(model)        Sequential          882       ✓       train",
        "├── 0          Sequential          864       ✓       train",
        "│   └── 0-11   Sequential ×12      864       ✓       train",
        "└── 1          Linear               18       ✓       train",
    ]
    assert "Total params:                      882" in out
    assert "Modules in train mode:             39" in out


def test_render_expand_depth_grep_filters() -> None:
    model, _ = build("stacked")
    t = tree(model)
    expanded = text(render_tree(t, expand=True, depth=2))
    assert row_names(expanded) == ["(model)", "0", *[str(i) for i in range(12)], "1"]
    assert "×12" not in expanded
    assert row_names(text(render_tree(t, depth=0))) == ["(model)"]
    grepped = text(render_tree(t, grep="0.3.0", expand=True))
    assert row_names(grepped) == ["(model)", "0", "3", "0"]


def test_render_trainable_and_frozen_only() -> None:
    model, _ = build("small_cnn")
    freeze(model, "backbone")
    t = tree(model)
    model.eval()  # no drift warnings in the output
    t = tree(model)
    assert row_names(text(render_tree(t, trainable_only=True))) == ["(model)", "fc"]
    assert row_names(text(render_tree(t, frozen_only=True))) == ["(model)", "backbone", "0", "1", "3", "4"]


def test_render_shows_aliases_tied_hooks_warnings() -> None:
    model, _ = build("shared_child")
    model.head.register_forward_hook(lambda *a: None)
    out = text(render_tree(tree(model)))
    assert "block (also: again)" in out
    assert "1 fwd" in out
    assert "Tied:                              block.weight = again.weight" in out
    cnn, _ = build("small_cnn")
    cnn.backbone[1].eval()
    assert "warning: backbone.1 (BatchNorm2d) is in eval mode inside a model in train mode" in text(
        render_tree(tree(cnn))
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depth": -1}, r"depth=-1 must be >= 0"),
        ({"trainable_only": True, "frozen_only": True}, r"exclude each other"),
        ({"grep": "nothing_like_this"}, r"--grep 'nothing_like_this' matches no module"),
    ],
)
def test_render_bad_options(options: dict[str, object], message: str) -> None:
    model, _ = build("small_cnn")
    with pytest.raises((TorchscopeError, PatternError), match=message):
        render_tree(tree(model), **options)  # type: ignore[arg-type]


def test_render_groups_many_warnings_of_a_kind() -> None:
    from torchscope import load_model

    model = load_model("resnet18", device="meta")
    freeze(model, "layer1")
    t = tree(model)
    assert len(t.warnings) == 4  # every one stays in the data
    out = " ".join(text(render_tree(t, depth=0)).split())
    assert (
        "warning: 4 norm layers have frozen params but are in train mode: their running stats still change; "
        "call .eval() on them to freeze them too (layer1.0.bn1, layer1.0.bn2, layer1.1.bn1 and 1 more)"
    ) in out


def test_torchscript_modules_show_their_original_class() -> None:
    scripted = torch.jit.script(build("small_cnn")[0])
    t = tree(scripted)
    assert t.model_type == "SmallCNN"
    assert [m.type for m in t.modules[:3]] == ["SmallCNN", "Sequential", "Conv2d"]
    assert t.total_params == sum(p.numel() for p in scripted.parameters())
