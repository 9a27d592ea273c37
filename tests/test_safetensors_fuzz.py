"""Fuzz: corrupted safetensors headers are exit 2 with one line, on meta as on the CPU, and allocate nothing.

Hypothesis takes a real safetensors file (a small net's state_dict) and damages its header: offsets
(shifted, swapped, overlapping, past the end, negative, not integers), dims (negative, huge, floats,
strings, booleans, extra or missing), dtypes (another known one, unknown, not a string), lengths (the
8-byte header length, the file cut short or extended) and the JSON itself (entries dropped, fields
missing, a non-object). Each case goes through the reader a user reaches, ``torchscope summary
net.py:build --weights FILE`` on meta and on the CPU, and must:

- exit 0 or 2, never 3; on 2 print one line on stderr and nothing on stdout, no traceback;
- give the same exit code on meta as on the CPU (the meta path is as strict as a real run);
- agree with the format's own reader (``safetensors.safe_open``): a file it refuses is refused;
- allocate nothing beyond the file's size while reading it (every tensor is a view of the map).

``TORCHSCOPE_FUZZ_EXAMPLES`` sets the number of cases (default 300); ``pytest
--hypothesis-show-statistics`` shows which damage was drawn and how each case ended.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import Result

from torchscope import TorchscopeError
from torchscope._loader.safetensors_io import DTYPES, load_safetensors, read_header

st_torch = pytest.importorskip("safetensors.torch")

CliRun = Callable[..., Result]
EXAMPLES = int(os.environ.get("TORCHSCOPE_FUZZ_EXAMPLES", "300"))
NET_PY = """\
from torch import nn


def build():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
"""


@functools.cache
def base() -> tuple[dict[str, Any], bytes]:
    """The undamaged file's header (parsed) and data section."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "good.safetensors"
        st_torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(file))
        raw = file.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


ODD_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
    st.lists(st.integers(-3, 3), max_size=3),
)
DIM = st.one_of(st.integers(0, 8), st.integers(-5, -1), st.integers(2**31, 2**64), ODD_VALUES)


def _damage_entry(draw: st.DrawFn, kind: str, entry: dict[str, Any], header: dict[str, Any], names: list[str], size: int) -> None:
    if kind == "offset":
        entry["data_offsets"][draw(st.integers(0, 1))] = draw(st.one_of(st.integers(-64, size + 64), ODD_VALUES))
    elif kind == "swap_offsets":
        entry["data_offsets"] = entry["data_offsets"][::-1]
    elif kind == "overlap":
        entry["data_offsets"] = list(header[draw(st.sampled_from(names))]["data_offsets"])
    elif kind == "dim" and entry["shape"]:
        entry["shape"][draw(st.integers(0, len(entry["shape"]) - 1))] = draw(DIM)
    elif kind == "add_dim":
        entry["shape"].append(draw(DIM))
    elif kind == "drop_dim" and entry["shape"]:
        entry["shape"].pop()
    elif kind == "dtype":
        entry["dtype"] = draw(st.one_of(st.sampled_from(sorted(DTYPES)), st.text(max_size=5), ODD_VALUES))
    elif kind == "drop_field":
        entry.pop(draw(st.sampled_from(["dtype", "shape", "data_offsets"])), None)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    header, data = base()
    header = json.loads(json.dumps(header))  # a fresh copy
    names = [k for k in header if k != "__metadata__"]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["offset", "swap_offsets", "overlap", "dim", "add_dim", "drop_dim", "dtype", "drop_field",
                 "drop_entry", "entry_not_object", "metadata", "not_object"]
            )
        )  # fmt: skip
        event(kind)
        if not isinstance(header, dict):
            break
        name = draw(st.sampled_from(names))
        entry = header.get(name)
        if kind == "not_object":
            header = draw(st.sampled_from([[], "x", 3, None]))
        elif kind == "drop_entry":
            header.pop(name, None)
        elif kind == "entry_not_object":
            header[name] = draw(ODD_VALUES)
        elif kind == "metadata":
            header["__metadata__"] = draw(st.one_of(ODD_VALUES, st.dictionaries(st.text(max_size=3), ODD_VALUES, max_size=2)))
        elif isinstance(entry, dict):
            try:
                _damage_entry(draw, kind, entry, header, names, len(data))
            except (KeyError, TypeError, IndexError, AttributeError):
                pass  # an earlier damage removed or replaced the field this one would change
    text = json.dumps(header).encode()
    length = len(text)
    if draw(st.booleans()):
        length = draw(st.sampled_from([0, 1, length - 1, length + 1, len(text) + len(data) + 1, 2**63, 10**9]))
        event("header length")
    raw = struct.pack("<Q", length) + text + data
    cut = draw(st.sampled_from(["none", "none", "truncate", "extend"]))
    if cut == "truncate":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif cut == "extend":
        raw += bytes(draw(st.integers(1, 64)))
    event(f"file {cut}")
    return raw


def _format_reader_accepts(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            for key in fh.keys():  # safe_open has no __iter__
                fh.get_slice(key)
    except Exception:
        return False
    return True


def _allocated_while_reading(path: Path) -> int | None:
    """Bytes torch was asked to allocate (not on meta) while reading ``path``; ``None`` when refused."""
    asked = [0]
    real = torch.empty

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        t = real(*args, **kwargs)
        if not t.is_meta:
            asked[0] += t.numel() * t.element_size()
        return t

    with mock.patch.object(torch, "empty", spy):
        try:
            tensors = load_safetensors(path, "cpu")
        except TorchscopeError:
            return None
    # what came back is views of the file's map, not copies
    assert sum(t.numel() * t.element_size() for t in tensors.values()) <= path.stat().st_size
    return asked[0]


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=damaged())
def test_damaged_headers_are_one_line_exit_2_on_meta_as_on_the_cpu(cli: CliRun, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "net.py").write_text(NET_PY)
        path = Path(tmp) / "w.safetensors"
        path.write_bytes(raw)
        codes = []
        for device in ("meta", "cpu"):
            result = cli("summary", f"{tmp}/net.py:build", "--weights", path, "--input-size", "1,4", "--device", device)
            assert result.exit_code in (0, 2), (device, result.exit_code, result.stderr[-2000:])
            if result.exit_code == 2:
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), lines
                assert result.stdout == "" and "Traceback" not in result.stderr
            codes.append(result.exit_code)
        assert codes[0] == codes[1], f"meta exit {codes[0]}, cpu exit {codes[1]}"
        try:
            read_header(path)
            ours = True
        except TorchscopeError as exc:
            assert "\n" not in str(exc)
            ours = False
        theirs = _format_reader_accepts(path)
        assert ours == theirs, f"our reader {'accepts' if ours else 'refuses'}, safetensors' {'accepts' if theirs else 'refuses'}"
        event(f"header {'accepted' if ours else 'refused'}; summary exit {codes[0]}")
        allocated = _allocated_while_reading(path)
        assert allocated is None or allocated <= len(raw)
        assert path.read_bytes() == raw, "the input file changed"
