"""``.safetensors`` files: the header without torch, the tensors without the ``safetensors`` package.

A safetensors file is an 8-byte little-endian header length, a JSON header (``{name: {dtype, shape,
data_offsets}}`` and an optional ``__metadata__``), then the raw little-endian bytes. It holds no
code, so reading one needs no ``--unsafe-load``. :func:`read_header` is torch-free;
:func:`load_safetensors` maps the file and views each tensor in place (no copy on the CPU), or
builds meta tensors from the header alone (no data read at all).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torchscope._format import format_shape
from torchscope.errors import SpecError

if TYPE_CHECKING:
    import torch

SUFFIX = ".safetensors"
# A header larger than this is damage, not a header (the format's own reader caps it at 100 MB).
_MAX_HEADER = 100_000_000

# safetensors dtype names -> torch dtype attribute names
DTYPES: dict[str, str] = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors header."""

    dtype: str  # the safetensors name, e.g. "BF16"
    shape: tuple[int, ...]
    start: int  # byte offsets into the data section
    end: int


def is_safetensors(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a safetensors file (by its suffix).

    >>> is_safetensors("model.safetensors"), is_safetensors("model.pt")
    (True, False)
    """
    return Path(path).suffix.lower() == SUFFIX


def _header_bytes(path: Path) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise SpecError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER:
                raise SpecError(f"{path} is not a safetensors file (header length {n}); check the file")
            raw = fh.read(n)
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}; check the path") from None
    if len(raw) < n:
        raise SpecError(f"{path} is truncated (header of {n} bytes, file ends first); check the file")
    return raw, 8 + n


def read_header(path: str | os.PathLike[str]) -> dict[str, TensorInfo]:
    """The tensors a safetensors file holds (name -> dtype, shape, offsets), reading only the header.

    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> f = tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False).name
    >>> save_file({"w": torch.zeros(2, 3, dtype=torch.bfloat16)}, f)
    >>> read_header(f)["w"]
    TensorInfo(dtype='BF16', shape=(2, 3), start=0, end=12)
    """
    path = Path(path)
    raw, _ = _header_bytes(path)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SpecError(
            f"{path} is not a safetensors file (its header is not JSON); check the file"
        ) from None
    if not isinstance(header, dict):
        raise SpecError(f"{path} is not a safetensors file (its header is not a JSON object)")
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            info = TensorInfo(str(dtype), tuple(int(d) for d in shape), int(start), int(end))
        except (KeyError, TypeError, ValueError):
            raise SpecError(f"{path}: header entry {name!r} is malformed; check the file") from None
        if info.dtype not in DTYPES:
            raise SpecError(f"{path}: tensor {name!r} has dtype {info.dtype}, which torchscope cannot read")
        out[name] = info
    return out


def load_safetensors(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, by name, in file order.

    On the CPU the tensors are views of a private (copy-on-write) map of the file: nothing is read
    until used, and writing to one never changes the file. ``device="meta"`` reads only the header.

    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> f = tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False).name
    >>> save_file({"w": torch.arange(6.0).reshape(2, 3)}, f)
    >>> load_safetensors(f)["w"][1].tolist()
    [3.0, 4.0, 5.0]
    """
    import torch

    path = Path(path)
    header = read_header(path)
    dev = torch.device(device)
    if dev.type == "meta":
        return {
            name: torch.empty(info.shape, dtype=getattr(torch, DTYPES[info.dtype]), device="meta")
            for name, info in header.items()
        }
    _, data_start = _header_bytes(path)
    size = path.stat().st_size
    out: dict[str, torch.Tensor] = {}
    if size <= data_start:
        buffer: mmap.mmap | None = None
    else:
        with open(path, "rb") as fh:
            buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    for name, info in header.items():
        dtype = getattr(torch, DTYPES[info.dtype])
        count = info.end - info.start
        if info.end < info.start or data_start + info.end > size:
            raise SpecError(f"{path}: tensor {name!r} lies outside the file (truncated?); check the file")
        if count == 0 or buffer is None:
            t = torch.empty(info.shape, dtype=dtype)
        else:
            flat = torch.frombuffer(buffer, dtype=torch.uint8, count=count, offset=data_start + info.start)
            t = flat.view(dtype).reshape(info.shape)
        if t.numel() * t.element_size() != count:
            raise SpecError(
                f"{path}: tensor {name!r} has {count} bytes for shape {format_shape(info.shape)}; check the file"
            )
        out[name] = t if dev.type == "cpu" else t.to(dev)
    return out
