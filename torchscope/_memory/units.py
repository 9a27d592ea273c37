"""Byte sizes in: ``--fit 24GiB`` parsed here (output uses the one formatter, ``torchscope._format``)."""

from __future__ import annotations

import re

from torchscope.errors import TorchscopeError

_UNITS = {
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
    if match is None or match.group(2).lower() not in _UNITS:
        raise TorchscopeError(f"{option} {text!r} is not a size; write e.g. 24GiB or 40GB")
    number, unit = match.group(1), match.group(2).lower()
    value = int(float(number) * _UNITS[unit])
    if value <= 0:
        raise TorchscopeError(f"{option} {text!r} must be a positive size, e.g. 24GiB")
    return value


__all__ = ["parse_bytes"]
