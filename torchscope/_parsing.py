"""The grammars of torchscope's option values, parsed one way for every command and the core.

Torch-free, so the CLI can check every value before anything heavy is imported, and the core (the
tree cache's key, the collectors) can read the same values without importing ``torchscope.cli``.
Every bad value is a :class:`~torchscope.errors.TorchscopeError` naming the value and the fix.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from torchscope._format import format_shape
from torchscope.errors import PatternError, SpecError, TorchscopeError

Shape = tuple[int, ...]

INT64_MAX = 2**63 - 1
"""The largest dimension (and element count) a tensor can have."""

_EXAMPLE = "e.g. 1,3,224,224 or 1x3x224x224 (several inputs: 1,3,8,8;1,10)"
# "2, 3, 64, 64" and "2 x 3" are one shape: spaces around a dimension separator are not input separators
_AROUND_SEPARATOR = re.compile(r"\s*([,xX])\s*")


def parse_input_size(text: str, *, option: str = "--input-size") -> list[Shape]:
    """Parse an input-size value: one shape or several, separated by ``;`` or spaces.

    Dimensions are separated by ``,`` or ``x``. An empty value is an error, never "the default":
    leave the option out for the default.

    >>> parse_input_size("1,3,224,224"), parse_input_size("1x3x224x224")
    ([(1, 3, 224, 224)], [(1, 3, 224, 224)])
    >>> parse_input_size("2,16; 2,16"), parse_input_size("2, 3, 64, 64")
    ([(2, 16), (2, 16)], [(2, 3, 64, 64)])
    >>> parse_input_size("")
    Traceback (most recent call last):
    torchscope.errors.SpecError: --input-size '' is empty; write e.g. 1,3,224,224 or 1x3x224x224 (several inputs: 1,3,8,8;1,10), or leave the option out for the default
    """
    shapes: list[Shape] = []
    for part in _AROUND_SEPARATOR.sub(r"\1", text).replace(";", " ").split():
        raw = re.split(r"[,xX]", part.strip("()[]"))
        if len(raw) > 1 and raw[-1] == "" and part.rstrip("()[]").endswith(","):
            raw.pop()  # "(2,)": a trailing comma, as in a Python tuple
        try:
            shape = tuple(int(d) for d in raw)
        except ValueError:
            raise SpecError(f"{option} {text!r} is not a list of integers; write {_EXAMPLE}") from None
        if not shape or any(d <= 0 for d in shape):
            raise SpecError(f"{option} {text!r} needs positive dimensions; write {_EXAMPLE}")
        numel = 1
        for d in shape:
            numel *= d
        if numel > INT64_MAX:
            raise SpecError(
                f"{option} {text!r}: shape {format_shape(shape)} has {numel:.3g} elements, more than a tensor can hold "
                f"(2^63 - 1); write {_EXAMPLE}"
            )
        shapes.append(shape)
    if not shapes:
        raise SpecError(
            f"{option} {text!r} is empty; write {_EXAMPLE}, or leave the option out for the default"
        )
    return shapes


def split_patterns(text: str | None, *, option: str = "--freeze") -> list[str]:
    """Split a comma-separated pattern option; ``None`` (option not given) is no pattern.

    A value that is given must name patterns: ``''``, ``','`` and ``'a,,b'`` are errors.

    >>> split_patterns("layer1.*, fc"), split_patterns(None)
    (['layer1.*', 'fc'], [])
    >>> split_patterns(",")
    Traceback (most recent call last):
    torchscope.errors.PatternError: --freeze ',' has an empty pattern; give comma-separated globs such as 'layer1.*,fc'
    """
    if text is None:
        return []
    patterns = [p.strip() for p in text.split(",")]
    if not any(patterns) or not all(patterns):
        raise PatternError(
            f"{option} {text!r} has an empty pattern; give comma-separated globs such as 'layer1.*,fc'"
        )
    return patterns


def parse_kwargs(pairs: list[str] | None, *, option: str = "--arg") -> dict[str, Any]:
    """Parse repeated ``--arg k=v`` values; a value that is no Python literal stays a string.

    >>> parse_kwargs(["num_classes=10", "weights=None", "name=abc"])
    {'num_classes': 10, 'weights': None, 'name': 'abc'}
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SpecError(f"{option} {pair!r} must look like key=value, e.g. {option} num_classes=10")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = raw
    return out


# canonical torch dtype name of every spelling --dtype accepts, and its bytes per element
DTYPE_NAMES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float16": "float16",
    "half": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float64": "float64",
    "double": "float64",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "bool": "bool",
}
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int64": 8, "int32": 4, "bool": 1}


def dtype_name(name: str, *, option: str | None = "--dtype") -> str:
    """The canonical torch name of a dtype spelling (``bf16`` -> ``bfloat16``); unknown is an error.

    >>> dtype_name("bf16"), dtype_name("torch.float64")
    ('bfloat16', 'float64')
    """
    key = name.lower().removeprefix("torch.")
    if key not in DTYPE_NAMES:
        where = f" ({option})" if option else ""
        raise SpecError(f"unknown dtype {name!r}{where}; use one of {', '.join(sorted(DTYPE_NAMES))}")
    return DTYPE_NAMES[key]


def input_bytes(shapes: list[Shape], dtype: str | None = None) -> int:
    """Bytes that random inputs of ``shapes`` take (float32 unless ``dtype`` names another).

    >>> input_bytes([(1, 3, 224, 224)]), input_bytes([(2, 16)], "int64")
    (602112, 256)
    """
    size = DTYPE_BYTES[dtype_name(dtype)] if dtype else 4
    total = 0
    for shape in shapes:
        numel = 1
        for d in shape:
            numel *= d
        total += numel * size
    return total


DEVICE_KINDS = ("cpu", "meta", "cuda", "mps", "xpu")


def parse_device(text: str, *, option: str = "--device") -> str:
    """Check the grammar of a device name: ``cpu``, ``meta``, ``cuda``, ``cuda:1``, ``mps``...

    Whether the device exists on this machine is the caller's to check (that needs torch).

    >>> parse_device("cuda:1"), parse_device("CPU")
    ('cuda:1', 'cpu')
    """
    kind, sep, index = text.strip().lower().partition(":")
    if kind not in DEVICE_KINDS or (sep and not (index.isascii() and index.isdigit())):
        raise SpecError(f"{option} {text!r} is not a device; use cpu, meta, cuda, cuda:N or mps")
    return f"{kind}:{int(index)}" if sep else kind


# byte-size units: decimal (kB = 1000) and binary (KiB = 1024); a bare letter is binary, as nvidia-smi's
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str, *, option: str = "--fit") -> int:
    """Bytes from ``24GiB``, ``24 GB`` (decimal), ``24G`` (binary, like ``nvidia-smi``'s MiB) or ``1024B``.

    A number needs its unit: ``24`` alone could be bytes, GB or GiB, so it is refused.

    >>> parse_bytes("24GiB"), parse_bytes("1.5 GB"), parse_bytes("512M"), parse_bytes("4096B")
    (25769803776, 1500000000, 536870912, 4096)
    """
    match = _SIZE.match(text)
    if match is None and re.match(r"^\s*-", text):
        raise TorchscopeError(f"{option} {text!r} must be a positive size, e.g. 24GiB")
    if match is not None and not match.group(2):
        number = match.group(1)
        raise TorchscopeError(
            f"{option} {text!r} has no unit; write {number}GiB (binary), {number}GB (decimal) or {number}B (bytes)"
        )
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        raise TorchscopeError(f"{option} {text!r} is not a size; write e.g. 24GiB or 40GB")
    number, unit = match.group(1), match.group(2).lower()
    value = int(float(number) * _SIZE_UNITS[unit])
    if value <= 0:
        raise TorchscopeError(f"{option} {text!r} must be a positive size, e.g. 24GiB")
    return value
