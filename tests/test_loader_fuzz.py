"""Fuzz: corrupted checkpoint bytes either load or raise a TorchscopeError, and the file never changes.

Hypothesis takes a real checkpoint (zip or legacy pickle; flat, nested, or a whole pickled model)
and damages it: truncation, flipped bytes, zeroed ranges, a random prefix, or several at once. Every
case goes through the three readers a user reaches: ``--weights`` (``load_weights``), the file as a
spec (``load_model``), and ``diff``. ``pytest --hypothesis-show-statistics`` shows the outcomes.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path

import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch import nn

from torchscope import TorchscopeError, diff_checkpoints, load_model
from torchscope._loader import load_weights


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))


@functools.cache
def bases() -> dict[str, bytes]:
    """The undamaged checkpoints, as bytes (built once; not a fixture, so a failure does not print them)."""
    with tempfile.TemporaryDirectory() as tmp:
        out: dict[str, bytes] = {}
        for name, obj, zip_format in [
            ("zip", model().state_dict(), True),
            ("legacy", model().state_dict(), False),
            ("nested", {"epoch": 2, "state_dict": model().state_dict(), "lr": 0.1}, True),
            ("whole", model(), True),
        ]:
            path = Path(tmp) / f"{name}.pt"
            torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
            out[name] = path.read_bytes()
        return out


@st.composite
def damaged(draw: st.DrawFn, base: bytes) -> bytes:
    raw = bytearray(base)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "zero", "prefix"]))
        event(kind)
        if kind == "truncate" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)) :]
        elif kind == "flip" and raw:
            at = draw(st.integers(0, len(raw) - 1))
            raw[at] ^= draw(st.integers(1, 255))
        elif kind == "zero" and raw:
            start = draw(st.integers(0, len(raw) - 1))
            length = draw(st.integers(1, 512))
            raw[start : start + length] = bytes(len(raw[start : start + length]))
        elif kind == "prefix":
            raw[:0] = draw(st.binary(min_size=1, max_size=64))
    return bytes(raw)


@settings(max_examples=250, deadline=None, print_blob=False)
@given(data=st.data(), which=st.sampled_from(["zip", "legacy", "nested", "whole"]), verify=st.booleans())
def test_corrupt_checkpoints_load_or_raise_our_error(data: st.DataObject, which: str, verify: bool) -> None:
    raw = data.draw(damaged(bases()[which]), label="damaged bytes")
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "good.pt"
        good.write_bytes(bases()["zip"])
        path = Path(tmp) / "ckpt.pt"
        path.write_bytes(raw)
        digest = hashlib.sha256(raw).hexdigest()
        readers = {
            "weights": lambda: load_weights(model(), path, verify=verify),
            "spec": lambda: load_model(str(path), verify=verify),
            "diff": lambda: diff_checkpoints(good, path, verify=verify),
        }
        for reader, call in readers.items():
            try:
                call()
                event(f"{reader}: loaded")
            except TorchscopeError as exc:
                assert str(exc) and "\n" not in str(exc), repr(exc)  # one line
                event(f"{reader}: {type(exc).__name__}")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "the input file changed"


def test_every_flip_inside_the_tensor_bytes_is_caught(tmp_path: Path) -> None:
    """Exhaustive over positions: a flipped byte anywhere in a zip checkpoint never loads silently."""
    raw = bases()["zip"]
    path = tmp_path / "ckpt.pt"
    expected = model().state_dict()
    silent: list[int] = []
    for at in range(0, len(raw), 7):
        damaged_bytes = bytearray(raw)
        damaged_bytes[at] ^= 0x01
        path.write_bytes(bytes(damaged_bytes))
        try:
            loaded = load_weights(model(), path).state_dict()
        except TorchscopeError:
            continue
        if any(not torch.equal(loaded[k], v) for k, v in expected.items()):
            silent.append(at)  # loaded, and some value is not the one saved
    assert silent == [], f"flips at {silent[:10]} loaded wrong values without an error"
