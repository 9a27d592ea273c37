"""GPU memory sizes for ``--fit NAME``, and the margin ``--fit`` keeps free on them.

The sizes are the total memory ``nvidia-smi`` shows for each card, in MiB (a little under the
marketing number: ECC and the driver take their share). docs/memory.md lists the same table.
"""

from __future__ import annotations

from torchscope._memory.schema import Margin
from torchscope._parsing import parse_bytes
from torchscope.errors import TorchscopeError

MIB = 2**20

GPUS: dict[str, tuple[int, str]] = {
    "t4": (15360, "NVIDIA T4 16 GB"),
    "v100-16gb": (16160, "NVIDIA V100 16 GB"),
    "v100-32gb": (32510, "NVIDIA V100 32 GB"),
    "rtx3090": (24576, "GeForce RTX 3090 24 GB"),
    "rtx4090": (24564, "GeForce RTX 4090 24 GB"),
    "a10g": (23028, "NVIDIA A10G 24 GB"),
    "l4": (23034, "NVIDIA L4 24 GB"),
    "a6000": (49140, "RTX A6000 48 GB"),
    "l40s": (46068, "NVIDIA L40S 48 GB"),
    "a100-40gb": (40960, "NVIDIA A100 40 GB"),
    "a100-80gb": (81920, "NVIDIA A100 80 GB"),
    "h100": (81559, "NVIDIA H100 80 GB"),
    "h200": (143771, "NVIDIA H200 141 GB"),
}
"""name -> (MiB as nvidia-smi reports it, description)."""

_ALIASES = {
    "h100-80gb": "h100",
    "a100": "a100-80gb",
    "v100": "v100-16gb",
    "4090": "rtx4090",
    "3090": "rtx3090",
}

MARGIN = Margin(context_bytes=1024 * MIB, fragmentation=0.10)
"""1 GiB for the CUDA context (300-600 MiB with lazy module loading) and cuBLAS/cuDNN workspaces,
then 10% of the rest for the caching allocator's fragmentation (reserved above allocated)."""


def capacity_of(text: str) -> tuple[int, str]:
    """(bytes, label) of ``--fit``'s value: a GPU name from :data:`GPUS` or a size.

    >>> capacity_of("rtx4090")
    (25757220864, 'rtx4090 (GeForce RTX 4090 24 GB, 24564 MiB)')
    >>> capacity_of("24GiB")
    (25769803776, '24GiB')
    """
    key = text.strip().lower().replace("_", "-").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key in GPUS:
        mib, desc = GPUS[key]
        return mib * MIB, f"{key} ({desc}, {mib} MiB)"
    try:
        return parse_bytes(text), text.strip()
    except TorchscopeError as exc:
        if "no unit" in str(exc) or "positive" in str(exc):
            raise
        raise TorchscopeError(
            f"--fit {text!r} is not a size or a known GPU; write e.g. 24GiB or 40GB, or one of "
            f"{', '.join(GPUS)}"
        ) from None
