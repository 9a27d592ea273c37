from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from zoo import build

from torchscope import PatternError, TorchscopeError, freeze, freeze_backbone, replace_head, unfreeze
from torchscope._freeze import find_head


def trainable(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def test_freeze_by_module_pattern_returns_changed_names() -> None:
    model, _ = build("small_cnn")
    changed = freeze(model, "backbone.0", "backbone.1")
    assert changed == ["backbone.0.weight", "backbone.0.bias", "backbone.1.weight", "backbone.1.bias"]
    assert trainable(model) == [
        "backbone.3.weight",
        "backbone.3.bias",
        "backbone.4.weight",
        "backbone.4.bias",
        "fc.weight",
        "fc.bias",
    ]
    # freezing again changes nothing
    assert freeze(model, "backbone.0") == []


def test_freeze_glob_and_param_name() -> None:
    model, _ = build("small_cnn")
    assert freeze(model, "backbone.*", "fc.bias") == [
        n for n in dict(model.named_parameters()) if n != "fc.weight"
    ]
    assert trainable(model) == ["fc.weight"]


def test_unfreeze_after_freeze() -> None:
    model, _ = build("small_cnn")
    model.requires_grad_(False)
    assert unfreeze(model, "fc") == ["fc.weight", "fc.bias"]
    assert trainable(model) == ["fc.weight", "fc.bias"]


def test_tied_weight_matches_under_either_name() -> None:
    model, _ = build("tied")
    changed = freeze(model, "out")
    assert changed == ["embed.weight", "out.weight"]
    assert not model.embed.weight.requires_grad
    unfreeze(model, "embed")
    assert model.out.weight.requires_grad


def test_shared_child_matches_under_second_name() -> None:
    model, _ = build("shared_child")
    assert freeze(model, "again") == ["block.weight", "block.bias", "again.weight", "again.bias"]
    assert trainable(model) == ["head.weight", "head.bias"]


def test_unknown_pattern_is_an_error_with_suggestion() -> None:
    model, _ = build("small_cnn")
    with pytest.raises(
        PatternError, match=r"pattern 'backbon\.0' matches no parameter; did you mean 'backbone.0'"
    ):
        freeze(model, "backbon.0")
    assert trainable(model) == [n for n, _ in model.named_parameters()]


def test_no_pattern_is_an_error() -> None:
    model, _ = build("small_cnn")
    with pytest.raises(PatternError, match="no pattern given"):
        unfreeze(model)


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("resnet18", "fc"),
        ("alexnet", "classifier.6"),
        ("vgg11_bn", "classifier.6"),
        ("squeezenet1_0", "classifier.1"),
        ("densenet121", "classifier"),
        ("mobilenet_v3_small", "classifier.3"),
        ("efficientnet_b0", "classifier.1"),
        ("convnext_tiny", "classifier.2"),
        ("maxvit_t", "classifier.5"),
        ("swin_t", "head"),
        ("vit_b_16", "heads.head"),
        ("googlenet", "fc"),
        ("shufflenet_v2_x0_5", "fc"),
        ("mnasnet0_5", "classifier.1"),
    ],
)
def test_find_head_torchvision_families(name: str, head: str) -> None:
    with torch.device("meta"):
        model = torchvision.models.get_model(name)
    assert find_head(model) == head
    assert freeze_backbone(model) == head
    assert trainable(model) == [n for n, _ in model.named_parameters() if n.startswith(head + ".")]


def test_find_head_missing_names_the_fix() -> None:
    with pytest.raises(
        TorchscopeError, match=r"no classifier head found in Sequential .* freeze by pattern instead"
    ):
        find_head(nn.Sequential(nn.Linear(2, 2)))


def test_freeze_backbone_small_cnn() -> None:
    model, _ = build("small_cnn")
    assert freeze_backbone(model) == "fc"
    assert trainable(model) == ["fc.weight", "fc.bias"]


def test_replace_head_linear_keeps_inputs_and_runs() -> None:
    model, x = build("small_cnn")
    assert replace_head(model, 5) == "fc"
    assert model.fc.in_features == 8 and model.fc.out_features == 5
    assert model(x).shape == (4, 5)


def test_replace_head_conv_squeezenet() -> None:
    model = torchvision.models.squeezenet1_1(num_classes=3)
    assert replace_head(model, 7) == "classifier.1"
    conv = model.classifier[1]
    assert isinstance(conv, nn.Conv2d) and (conv.in_channels, conv.out_channels) == (512, 7)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_replace_head_on_meta_stays_on_meta() -> None:
    with torch.device("meta"):
        model = torchvision.models.vit_b_16()
    assert replace_head(model, 10) == "heads.head"
    assert model.heads.head.weight.is_meta and model.heads.head.out_features == 10


def test_replace_head_bad_num_classes() -> None:
    model, _ = build("small_cnn")
    with pytest.raises(TorchscopeError, match=r"num_classes=0 must be a positive integer"):
        replace_head(model, 0)


@pytest.mark.parametrize(
    ("name", "head"),
    [("timm:resnet18", "fc"), ("timm:convnext_atto", "head.fc"), ("timm:vit_tiny_patch16_224", "head")],
)
def test_find_head_timm(name: str, head: str) -> None:
    pytest.importorskip("timm")
    from torchscope import load_model

    model = load_model(name, device="meta")
    assert find_head(model) == head
    assert replace_head(model, 4) == head
    assert model.get_submodule(head).out_features == 4
