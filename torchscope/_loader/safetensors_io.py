"""``.safetensors`` files: the header without torch, the tensors without the ``safetensors`` package.

A safetensors file is an 8-byte little-endian header length, a JSON header (``{name: {dtype, shape,
data_offsets}}`` and an optional ``__metadata__``), then the raw little-endian bytes. It holds no
code, so reading one needs no ``--unsafe-load``. :func:`read_header` is torch-free;
:func:`load_safetensors` maps the file and views each tensor in place (no copy on the CPU), or
builds meta tensors from the header alone (no data read at all).
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchscope._format import format_bytes, format_shape
from torchscope.errors import SpecError

if TYPE_CHECKING:
    import torch

SUFFIX = ".safetensors"
# A header larger than this is damage, not a header (the format's own reader caps it at 100 MB).
_MAX_HEADER = 100_000_000

# safetensors dtype names -> (torch dtype attribute name, bytes per element)
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "F8_E8M0": ("float8_e8m0fnu", 1),
    "C64": ("complex64", 8),
}
_FIX = "the file is damaged or was not written by safetensors: copy or save it again"


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


def _header_bytes(path: Path) -> tuple[bytes, int, int]:
    """The raw JSON header, where the data section starts, and the file's size."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) < 8:
                raise SpecError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER:
                raise SpecError(f"{path} is not a safetensors file (header length {n}); check the file")
            if n > size - 8:
                raise SpecError(
                    f"{path} is truncated (header of {n} bytes, the file ends after {size - 8}); {_FIX}"
                )
            raw = fh.read(n)
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}; check the path") from None
    if len(raw) < n:
        raise SpecError(f"{path} is truncated (header of {n} bytes, file ends first); {_FIX}")
    return raw, 8 + n, size


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class _Duplicate(Exception):
    pass


def _cut(text: str, limit: int = 80) -> str:
    """``text`` cut short: a damaged header can put megabytes into one field."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any) -> str:
    return _cut(repr(value))


def _size(nbytes: int) -> str:
    return f"{nbytes} B" if nbytes < 1024 else format_bytes(nbytes) if nbytes < 2**60 else "more than 1 EiB"


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(path: Path, name: str, entry: Any) -> TensorInfo:
    """One header entry, checked as the format's own reader checks it; nothing is allocated."""
    where = f"{path}: tensor {_show(name)}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise SpecError(f"{where}: its header entry is malformed (needs dtype, shape, data_offsets); {_FIX}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        known = ", ".join(DTYPES)
        raise SpecError(f"{where} has dtype {_show(dtype)}, which torchscope cannot read (it reads {known})")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise SpecError(f"{where} has shape {_show(shape)}: dimensions must be integers >= 0; {_FIX}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise SpecError(f"{where} has data_offsets {_show(offsets)}: they must be [start, end], 0 <= start <= end; {_FIX}")
    nbytes = DTYPES[dtype][1] * math.prod(shape)
    if offsets[1] - offsets[0] != nbytes:
        raise SpecError(
            f"{where} has {format_bytes(offsets[1] - offsets[0])} (data_offsets {_show(offsets)}) for shape "
            f"{_cut(format_shape(tuple(shape)))} {dtype}, which takes {_size(nbytes)}; {_FIX}"
        )
    return TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])


def read_header(path: str | os.PathLike[str]) -> dict[str, TensorInfo]:
    """The tensors a safetensors file holds (name -> dtype, shape, offsets), reading only the header.

    The header is checked as strictly as the format's own reader checks it, before anything is
    allocated: valid JSON, known dtypes, dimensions that are integers >= 0, a byte size equal to
    dtype size x the product of the shape, and tensors that tile the data section exactly (inside
    the file, no overlap, no gap, nothing after the last one). Any failure is one SpecError line.

    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> f = tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False).name
    >>> save_file({"w": torch.zeros(2, 3, dtype=torch.bfloat16)}, f)
    >>> read_header(f)["w"]
    TensorInfo(dtype='BF16', shape=(2, 3), start=0, end=12)
    """
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[dict[str, TensorInfo], int, int]:
    """The checked header, where the data section starts, and the file's size."""
    raw, data_start, size = _header_bytes(path)
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except _Duplicate as dup:
        raise SpecError(f"{path}: tensor {_show(dup.args[0])} appears twice in the header; {_FIX}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SpecError(f"{path} is not a safetensors file (its header is not JSON); check the file") from None
    if not isinstance(header, dict):
        raise SpecError(f"{path} is not a safetensors file (its header is not a JSON object)")
    metadata = header.get("__metadata__")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise SpecError(f"{path}: its __metadata__ must map names to strings; {_FIX}")
    out = {name: _entry(path, name, entry) for name, entry in header.items() if name != "__metadata__"}
    _check_layout(path, out, size - data_start)
    return out, data_start, size


def _check_layout(path: Path, tensors: dict[str, TensorInfo], data_size: int) -> None:
    """The tensors' bytes tile the data section: each starts where the previous one ends."""
    at, previous = 0, None
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if info.start != at:
            if info.start > data_size:
                raise SpecError(f"{path}: tensor {_show(name)} lies outside the file (truncated?); {_FIX}")
            what = f"overlaps tensor {_show(previous)}" if info.start < at else f"leaves a gap of {info.start - at} bytes"
            raise SpecError(f"{path}: tensor {_show(name)} (data_offsets [{info.start}, {info.end}]) {what}; {_FIX}")
        if info.end > data_size:
            raise SpecError(
                f"{path}: tensor {_show(name)} lies outside the file (truncated? it ends at byte {info.end} of a "
                f"{data_size}-byte data section); {_FIX}"
            )
        at, previous = info.end, name
    if at != data_size:
        raise SpecError(
            f"{path} has {data_size - at} bytes after its last tensor (the header does not cover the file); {_FIX}"
        )


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
    header, data_start, size = _read(path)
    dev = torch.device(device)
    dtypes = {name: _torch_dtype(path, name, info) for name, info in header.items()}
    if dev.type == "meta":
        return {name: torch.empty(info.shape, dtype=dtypes[name], device="meta") for name, info in header.items()}
    out: dict[str, torch.Tensor] = {}
    buffer: mmap.mmap | None = None
    if size > data_start:
        with open(path, "rb") as fh:
            buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    for name, info in header.items():
        dtype = dtypes[name]
        count = info.end - info.start  # the header check proved it is dtype size x numel, inside the file
        if count == 0 or buffer is None:
            t = torch.empty(info.shape, dtype=dtype)  # no elements: nothing allocated
        else:
            flat = torch.frombuffer(buffer, dtype=torch.uint8, count=count, offset=data_start + info.start)
            t = flat.view(dtype).reshape(info.shape)
        out[name] = t if dev.type == "cpu" else t.to(dev)
    return out


def _torch_dtype(path: Path, name: str, info: TensorInfo) -> torch.dtype:
    import torch

    dtype = getattr(torch, DTYPES[info.dtype][0], None)
    if not isinstance(dtype, torch.dtype):
        raise SpecError(
            f"{path}: tensor {name!r} has dtype {info.dtype}, which this torch ({torch.__version__}) "
            "does not have; upgrade torch"
        )
    return dtype
