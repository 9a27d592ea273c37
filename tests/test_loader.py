from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from zoo import SmallCNN

from torchscope import SpecError, load_model
from torchscope._loader import (
    build_kwargs_for_published,
    default_input_size,
    init_on_meta,
    list_model_names,
    unwrap,
)

NET_PY = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.a = nn.Linear(3, width)
        self.register_buffer("scale", torch.ones(width), persistent=False)

    def forward(self, x):
        return self.a(x) * self.scale


def build_net(num_classes: int = 2) -> nn.Module:
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, num_classes))


instance = nn.Linear(3, 1)
not_a_model = 42


def returns_str() -> str:
    return "nope"
"""


@pytest.fixture
def net_py(tmp_path: Path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(NET_PY)
    return path


@pytest.fixture
def mypkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    pkg = tmp_path / "ts_mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(NET_PY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "ts_mypkg"
    for name in [n for n in sys.modules if n.startswith("ts_mypkg")]:
        del sys.modules[name]


def all_tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


# --- torchvision names ---------------------------------------------------------------------------


def test_torchvision_name_on_cpu_with_kwargs() -> None:
    model = load_model("resnet18", kwargs={"num_classes": 10})
    assert isinstance(model, torchvision.models.ResNet)
    assert model.fc.out_features == 10
    assert all(t.device.type == "cpu" for t in all_tensors(model))


@pytest.mark.parametrize(
    "name",
    [
        "regnet_y_400mf",  # computes its architecture from tensors
        "fasterrcnn_mobilenet_v3_large_320_fpn",  # detection
        "lraspp_mobilenet_v3_large",  # segmentation
        "r3d_18",  # video
        "raft_small",  # optical flow
        "quantized_mobilenet_v2",  # quantized
    ],
)
def test_every_kind_of_torchvision_name_builds_on_meta(name: str) -> None:
    model = load_model(name, device="meta")
    tensors = all_tensors(model)
    assert tensors and all(t.is_meta for t in tensors)


def test_meta_build_of_large_model_is_fast_and_allocates_nothing() -> None:
    model = load_model("vit_h_14", device="meta")
    assert sum(p.numel() for p in model.parameters()) == 633_470_440  # published, image_size=518
    assert model.image_size == 518


def test_init_on_meta_restores_registration() -> None:
    before = (
        nn.Module.register_parameter,
        nn.Module.register_buffer,
        nn.init.normal_,
        nn.init.kaiming_uniform_,
    )
    with init_on_meta():
        inside = nn.Linear(2, 2)
        real = torch.zeros(3)
        nn.init.normal_(real)  # real tensors are still initialised
    assert real.abs().sum() > 0
    assert (
        nn.Module.register_parameter,
        nn.Module.register_buffer,
        nn.init.normal_,
        nn.init.kaiming_uniform_,
    ) == before
    outside = nn.Linear(2, 2)
    assert inside.weight.is_meta and not outside.weight.is_meta
    assert isinstance(inside.weight, nn.Parameter) and inside.weight.requires_grad


def test_init_on_meta_keeps_lazy_modules_lazy() -> None:
    with init_on_meta():
        lazy = nn.LazyLinear(3)
    assert isinstance(lazy.weight, nn.parameter.UninitializedParameter)


def test_published_kwargs() -> None:
    assert build_kwargs_for_published("vit_h_14") == {"image_size": 518}
    assert build_kwargs_for_published("vit_b_16") == {"image_size": 224}
    assert build_kwargs_for_published("googlenet")["aux_logits"] is False
    assert build_kwargs_for_published("resnet18") == {}


def test_user_kwargs_override_published() -> None:
    model = load_model("vit_h_14", device="meta", kwargs={"image_size": 224})
    assert model.image_size == 224


def test_default_input_size() -> None:
    assert default_input_size("resnet18") == (1, 3, 224, 224)
    assert default_input_size("inception_v3", batch=4) == (4, 3, 299, 299)
    assert default_input_size("vit_h_14") == (1, 3, 518, 518)
    assert default_input_size("r3d_18") == (1, 3, 16, 112, 112)
    assert default_input_size("timm:resnet18") == (1, 3, 224, 224)
    with pytest.raises(SpecError, match=r"batch=0 must be a positive integer"):
        default_input_size("resnet18", batch=0)


def test_list_model_names() -> None:
    names = list_model_names()
    assert names == sorted(torchvision.models.list_models())
    assert "vit_h_14" in names and "quantized_resnet18" in names


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(SpecError, match=r"unknown model 'resnet1800'; did you mean 'resnet18'"):
        load_model("resnet1800")


@pytest.mark.parametrize("spec", ["a:b:c", "foo.bar", "resnet 18", ":Net", "pkg.mod:", "timm:"])
def test_malformed_spec(spec: str) -> None:
    with pytest.raises(SpecError, match=r"malformed spec"):
        load_model(spec)


def test_bad_kwarg_names_the_arg() -> None:
    with pytest.raises(
        SpecError, match=r"building resnet18\(bogus=1\) failed: .*bogus.*; check the --arg values"
    ):
        load_model("resnet18", device="meta", kwargs={"bogus": 1})


def test_bad_device() -> None:
    with pytest.raises(SpecError, match=r"device 'gpu0' is not a torch device"):
        load_model("resnet18", device="gpu0")


# --- --pretrained from the local hub cache only --------------------------------------------------


def test_pretrained_missing_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    expected = tmp_path / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    with pytest.raises(SpecError, match=rf"--pretrained: {expected} not found; torchscope never downloads"):
        load_model("squeezenet1_1", pretrained=True)


def test_pretrained_reads_the_cached_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(1)
    published = torchvision.models.squeezenet1_1()
    torch.save(published.state_dict(), tmp_path / "checkpoints" / "squeezenet1_1-b8a52dc0.pth")
    model = load_model("squeezenet1_1", pretrained=True)
    assert torch.equal(model.classifier[1].weight, published.classifier[1].weight)


# --- timm ----------------------------------------------------------------------------------------


def test_timm_name_on_meta() -> None:
    pytest.importorskip("timm")
    model = load_model("timm:resnet18", device="meta", kwargs={"num_classes": 5})
    assert model.fc.out_features == 5 and model.fc.weight.is_meta


def test_timm_unknown_name() -> None:
    pytest.importorskip("timm")
    with pytest.raises(SpecError, match=r"unknown timm model 'resnet1800'; did you mean timm:resnet18"):
        load_model("timm:resnet1800")


def test_timm_missing_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(
        SpecError, match=r"'timm:resnet18' needs timm, which is not installed; pip install timm"
    ):
        load_model("timm:resnet18")


# --- Python attributes ---------------------------------------------------------------------------


def test_file_class_factory_and_instance(net_py: Path) -> None:
    net = load_model(f"{net_py}:Net", kwargs={"width": 6})
    assert type(net).__name__ == "Net" and net.a.out_features == 6
    seq = load_model(f"{net_py}:build_net", kwargs={"num_classes": 3})
    assert isinstance(seq, nn.Sequential) and seq[2].out_features == 3
    inst = load_model(f"{net_py}:instance")
    assert isinstance(inst, nn.Linear)


def test_package_module_attr(mypkg: str) -> None:
    model = load_model(f"{mypkg}.models:build_net", kwargs={"num_classes": 10}, device="meta")
    assert model[2].out_features == 10 and model[2].weight.is_meta


def test_module_not_importable() -> None:
    with pytest.raises(
        SpecError, match=r"cannot import 'no_such_pkg_xyz.models' \(No module named 'no_such_pkg_xyz'\)"
    ):
        load_model("no_such_pkg_xyz.models:Net")


@pytest.mark.parametrize(
    ("attr", "kwargs", "message"),
    [
        ("Nett", {}, r"has no attribute 'Nett'; did you mean 'Net'"),
        ("not_a_model", {}, r"is a int; it must be an nn.Module subclass, a factory or a module"),
        ("returns_str", {}, r"returned a str, not an nn.Module"),
        ("instance", {"x": 1}, r"is a module instance; it takes no --arg"),
        ("Net", {"depth": 3}, r"failed: .*depth.*; check the --arg values"),
    ],
)
def test_bad_attribute(net_py: Path, attr: str, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_model(f"{net_py}:{attr}", kwargs=kwargs)


def test_missing_python_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"file not found: .*nope.py; check the path in the spec"):
        load_model(f"{tmp_path}/nope.py:Net")


def test_python_file_that_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(SpecError, match=r"importing .*broken.py failed: RuntimeError: boom at .*broken.py:1 \(in <module>\); fix the file"):
        load_model(f"{path}:Net")


# --- files ---------------------------------------------------------------------------------------


def test_torchscript_archive(tmp_path: Path) -> None:
    path = tmp_path / "net.ts"
    torch.jit.save(torch.jit.script(SmallCNN()), str(path))
    model = load_model(str(path))
    assert isinstance(model, torch.jit.ScriptModule)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 3)


def test_torch_export_archive(tmp_path: Path) -> None:
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(nn.Sequential(nn.Linear(3, 4)), (torch.randn(2, 3),)), path)
    model = load_model(str(path))
    assert isinstance(model, nn.Module)
    assert model(torch.randn(2, 3)).shape == (2, 4)


def test_whole_pickled_module_refused_unless_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(3, 4)), path)
    with pytest.raises(
        SpecError, match=r"pickles Python objects .* runs code from the file; pass --unsafe-load"
    ):
        load_model(str(path))
    model = load_model(str(path), unsafe_load=True)
    assert isinstance(model[0], nn.Linear)


def test_state_dict_file_alone_needs_architecture(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(SmallCNN().state_dict(), path)
    with pytest.raises(SpecError, match=r"holds a state_dict, which needs an architecture: .*--weights"):
        load_model(str(path))


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello\n")
    with pytest.raises(SpecError, match=r"notes.pt is not a PyTorch checkpoint"):
        load_model(str(path))


def test_missing_file() -> None:
    with pytest.raises(SpecError, match=r"file not found: missing/ft.pt"):
        load_model("missing/ft.pt")


# --- weights -------------------------------------------------------------------------------------


@pytest.fixture
def small_cnn_weights(tmp_path: Path) -> tuple[Path, nn.Module]:
    torch.manual_seed(3)
    source = SmallCNN()
    path = tmp_path / "ft.pt"
    torch.save(source.state_dict(), path)
    return path, source


ZOO_PY = str(Path(__file__).parent / "zoo.py")


def test_weights_loaded_on_cpu(small_cnn_weights: tuple[Path, nn.Module]) -> None:
    path, source = small_cnn_weights
    model = load_model(f"{ZOO_PY}:SmallCNN", weights=path)
    for (name, a), b in zip(model.state_dict().items(), source.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert all(not t.is_meta for t in all_tensors(model))


def test_weights_with_non_persistent_buffer(tmp_path: Path, net_py: Path) -> None:
    path = tmp_path / "net_sd.pt"
    torch.save({"a.weight": torch.ones(4, 3), "a.bias": torch.zeros(4)}, path)
    model = load_model(f"{net_py}:Net", weights=path)
    assert torch.equal(model.scale, torch.ones(4)) and torch.equal(model.a.weight, torch.ones(4, 3))


def test_weights_into_meta_model_check_names_and_shapes(small_cnn_weights: tuple[Path, nn.Module]) -> None:
    path, _ = small_cnn_weights
    model = load_model(f"{ZOO_PY}:SmallCNN", weights=path, device="meta")
    assert all(t.is_meta for t in all_tensors(model))


def test_nested_and_prefixed_checkpoint(tmp_path: Path) -> None:
    source = SmallCNN()
    path = tmp_path / "lightning.ckpt"
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    model = load_model(f"{ZOO_PY}:SmallCNN", weights=path)
    assert torch.equal(model.fc.weight, source.fc.weight)
    path2 = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path2)
    assert torch.equal(load_model(f"{ZOO_PY}:SmallCNN", weights=path2).fc.bias, source.fc.bias)


def test_weights_mismatch_lists_missing_and_unexpected(small_cnn_weights: tuple[Path, nn.Module]) -> None:
    path, _ = small_cnn_weights
    with pytest.raises(
        SpecError,
        match=r"does not fit ResNet: missing keys \[conv1.weight, .*\] and \d+ more, unexpected keys \[backbone.0.weight, ",
    ):
        load_model("resnet18", weights=path, device="meta")


def test_weights_shape_mismatch(small_cnn_weights: tuple[Path, nn.Module]) -> None:
    path, _ = small_cnn_weights
    with pytest.raises(
        SpecError, match=r"shape mismatch at \[fc.weight \[3, 8\] vs \[10, 8\], fc.bias \[3\] vs \[10\]\]"
    ):
        load_model(f"{ZOO_PY}:SmallCNN", weights=path, kwargs={"num_classes": 10})


def test_weights_file_missing() -> None:
    with pytest.raises(SpecError, match=r"weights file not found: nope.pt"):
        load_model("resnet18", weights="nope.pt")


# --- unwrap --------------------------------------------------------------------------------------


def test_unwrap_dataparallel_and_compile() -> None:
    inner = SmallCNN()
    assert unwrap(inner) == (inner, ())
    assert unwrap(nn.DataParallel(inner)) == (inner, ("DataParallel",))
    compiled = torch.compile(nn.DataParallel(inner))
    assert unwrap(compiled) == (inner, ("torch.compile", "DataParallel"))


def test_pretrained_file_that_does_not_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(SmallCNN().state_dict(), tmp_path / "checkpoints" / "squeezenet1_1-b8a52dc0.pth")
    with pytest.raises(
        SpecError, match=r"--pretrained: .*squeezenet1_1-b8a52dc0.pth does not load into squeezenet1_1"
    ):
        load_model("squeezenet1_1", pretrained=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_device_without_cuda() -> None:
    with pytest.raises(SpecError, match=r"device 'cuda' is not available on this machine"):
        load_model("resnet18", device="cuda")


def test_builder_without_meta_kernel_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "odd.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n"
        "def build():\n"
        "    m = nn.Linear(3, 3)\n"
        "    if m.weight.is_meta:\n"
        "        raise NotImplementedError('Cannot copy out of meta tensor; no data!')\n"
        "    return m\n"
    )
    model = load_model(f"{path}:build", device="meta")
    assert model.weight.is_meta


def test_half_weights_take_the_model_dtype(tmp_path: Path) -> None:
    source = SmallCNN()
    path = tmp_path / "half.pt"
    torch.save(source.half().state_dict(), path)
    for device in ("cpu", "meta"):
        model = load_model(f"{ZOO_PY}:SmallCNN", weights=path, device=device)
        assert model.fc.weight.dtype == torch.float32, device
        assert model.backbone[1].num_batches_tracked.dtype == torch.int64
    assert torch.equal(load_model(f"{ZOO_PY}:SmallCNN", weights=path).fc.weight, source.fc.weight.float())


def test_python_file_without_attr(net_py: Path) -> None:
    with pytest.raises(SpecError, match=r"net.py is a Python file; name the model in it, e.g. .*net.py:Net"):
        load_model(str(net_py))
