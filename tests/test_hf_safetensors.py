"""``.safetensors`` files: --weights for any model, ``diff a.safetensors b.safetensors``, no --unsafe-load."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from torch import nn

from torchscope import diff_checkpoints, load_model
from torchscope._loader import load_weights
from torchscope._loader.safetensors_io import load_safetensors, read_header
from torchscope.errors import SpecError

st = pytest.importorskip("safetensors.torch")

DTYPES = [
    torch.float32,
    torch.bfloat16,
    torch.float16,
    torch.float64,
    torch.int64,
    torch.int8,
    torch.uint8,
    torch.bool,
]


def test_our_reader_agrees_with_the_safetensors_package(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    tensors = {f"t{i}": (torch.randn(3, 5, generator=gen) * 10).to(dt) for i, dt in enumerate(DTYPES)}
    tensors["scalar"] = torch.tensor(2.5)
    tensors["empty"] = torch.zeros(0, 4)
    file = tmp_path / "x.safetensors"
    st.save_file(tensors, str(file))
    ours = load_safetensors(file)
    theirs = st.load_file(str(file))
    assert list(ours) == list(theirs)
    for name, t in theirs.items():
        assert ours[name].dtype == t.dtype and torch.equal(ours[name], t), name
    meta = load_safetensors(file, "meta")
    assert {k: (tuple(v.shape), v.dtype, v.is_meta) for k, v in meta.items()} == {
        k: (tuple(v.shape), v.dtype, True) for k, v in theirs.items()
    }
    # writing to a loaded tensor never changes the file (copy-on-write map)
    ours["t0"].add_(1)
    assert torch.equal(st.load_file(str(file))["t0"], tensors["t0"])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"abc", r"shorter than its 8-byte header length"),
        (struct.pack("<Q", 10**12) + b"{}", r"header length 1000000000000"),
        (struct.pack("<Q", 4) + b"nope", r"its header is not JSON"),
        (struct.pack("<Q", 50) + b"{}", r"is truncated"),
    ],
)
def test_damaged_files_are_one_line_errors(tmp_path: Path, content: bytes, match: str) -> None:
    file = tmp_path / "bad.safetensors"
    file.write_bytes(content)
    with pytest.raises(SpecError, match=match):
        read_header(file)


def test_tensor_outside_the_file(tmp_path: Path) -> None:
    file = tmp_path / "t.safetensors"
    st.save_file({"w": torch.zeros(100)}, str(file))
    file.write_bytes(file.read_bytes()[:-8])
    with pytest.raises(SpecError, match=r"tensor 'w' lies outside the file"):
        load_safetensors(file)


def test_weights_safetensors_for_a_torchvision_model_needs_no_unsafe_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = load_model("resnet18")
    file = tmp_path / "r.safetensors"
    st.save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(file))
    loaded = load_model("resnet18", weights=file)
    assert all(
        torch.equal(a, b)
        for a, b in zip(source.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
    meta = load_model("resnet18", device="meta", weights=file)
    assert meta.fc.weight.is_meta and meta.fc.weight.shape == (1000, 512)


def test_tied_weights_saved_once_load_tied() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    import tempfile

    source = Tied()
    with tempfile.TemporaryDirectory() as d:
        file = Path(d) / "t.safetensors"
        st.save_model(source, str(file))  # drops the duplicate name
        assert list(read_header(file)) == ["emb.weight"]  # one name of the two kept, the other dropped
        target = load_weights(Tied(), file)
    assert target.head.weight is target.emb.weight
    assert torch.equal(target.emb.weight, source.emb.weight)


def test_diff_of_two_safetensors_files(tmp_path: Path) -> None:
    a = {"w": torch.zeros(4), "b": torch.ones(2)}
    b = {"w": torch.tensor([0.0, 0.0, 0.5, 0.0]), "b": torch.ones(2), "new": torch.zeros(1)}
    st.save_file(a, str(tmp_path / "a.safetensors"))
    st.save_file(b, str(tmp_path / "b.safetensors"))
    report = diff_checkpoints(tmp_path / "a.safetensors", tmp_path / "b.safetensors", expect_frozen=["b"])
    status = {e.name: e.status for e in report.entries}
    assert status == {"w": "changed", "b": "unchanged", "new": "added"}
    assert report.ok
    assert next(e for e in report.entries if e.name == "w").max_abs == 0.5
