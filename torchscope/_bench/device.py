"""The device side of ``torchscope bench``: which device and process group, the window clock,
peak memory, and the matmul peak timed in the same run.
"""

from __future__ import annotations

import gc
import math
import os
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from torchscope._bench.schema import MatmulPeak, Memory
from torchscope.errors import TorchscopeError


@dataclass
class Dist:
    """This process's place in a ``torchrun`` launch; ``owned`` when bench made the process group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    owned: bool


def dist_from_env() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when launched by torchrun with more than one process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise TorchscopeError(
            "RANK/WORLD_SIZE/LOCAL_RANK must be integers; launch with `torchrun --nproc-per-node N -m torchscope bench`"
        ) from None
    return (rank, world, local) if world > 1 else None


def resolve_device(device: str | None, local_rank: int | None) -> torch.device:
    """The device to run on: ``device``, or CUDA when there is one; ``cuda`` under torchrun is the local rank's GPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise TorchscopeError(f"device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise TorchscopeError(f"device {device!r} is not supported by bench; use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TorchscopeError(f"device {device!r} is not available on this machine; use --device cpu")
        index = dev.index if dev.index is not None else (local_rank or 0)
        if index >= torch.cuda.device_count():
            raise TorchscopeError(
                f"device cuda:{index} does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
            )
        dev = torch.device("cuda", index)
    return dev


def free_memory() -> None:
    """Give freed tensors back: collect cycles, and empty CUDA's cache when CUDA is in use."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


class Clock:
    """Window timer: CUDA events on a GPU (device time), perf_counter on the CPU.

    Both synchronise only at ``start`` and ``stop``, the window edges.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        if self.cuda:
            self._ev0 = torch.cuda.Event(enable_timing=True)
            self._ev1 = torch.cuda.Event(enable_timing=True)
        self._t0 = 0.0

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self.sync()
        if self.cuda:
            self._ev0.record()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self._ev1.record()
            self._ev1.synchronize()
            return float(self._ev0.elapsed_time(self._ev1)) / 1000.0
        return time.perf_counter() - self._t0


# ---------------------------------------------------------------------------------------------
# Peak memory


def _read_hwm() -> int | None:
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def reset_peak_memory(device: torch.device) -> str:
    """Start measuring peak memory now; returns how it is measured (the :class:`Memory` source)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda max_memory_allocated/max_memory_reserved since reset"
    try:
        # Linux: writing 5 resets the peak RSS (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
        if _read_hwm() is not None:
            return "peak RSS (VmHWM) since reset"
    except OSError:
        pass
    return "peak RSS of the process (ru_maxrss, since start)"


def peak_memory(device: torch.device, source: str) -> Memory:
    """The peak since :func:`reset_peak_memory` returned ``source``."""
    if device.type == "cuda":
        return Memory(
            source=source,
            peak_allocated_bytes=int(torch.cuda.max_memory_allocated(device)),
            peak_reserved_bytes=int(torch.cuda.max_memory_reserved(device)),
            peak_rss_bytes=None,
        )
    rss = _read_hwm() if "VmHWM" in source else None
    if rss is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # bytes on macOS, KiB on Linux
    return Memory(source=source, peak_allocated_bytes=None, peak_reserved_bytes=None, peak_rss_bytes=rss)


# ---------------------------------------------------------------------------------------------
# The matmul peak

_TORCH_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def measure_matmul_peak(
    device: torch.device | str, dtype: str = "fp32", *, n: int | None = None, reps: int | None = None
) -> MatmulPeak:
    """Time square ``n x n`` matmuls in ``dtype`` on ``device``; the best rep gives the TFLOP/s.

    >>> measure_matmul_peak("cpu", "fp32", n=64, reps=2).n
    64
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    # CPUs without bf16/fp16 matmul units take seconds for one 1024^3 product in those dtypes
    n = n or (8192 if cuda else 1024 if dtype in ("fp32", "tf32") else 512)
    reps = reps or (20 if cuda else 5)
    a = torch.randn(n, n, device=dev, dtype=_TORCH_DTYPES[dtype])
    b = torch.randn(n, n, device=dev, dtype=_TORCH_DTYPES[dtype])
    clock = Clock(dev)
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    try:
        # "tf32" means the model's convolutions run on TF32 tensor cores (cuDNN's flag, on by
        # default) although plain fp32 matmuls may not: time the matmul the way the model computes
        if dtype == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = True
        torch.mm(a, b)
        best = math.inf
        for _ in range(reps):
            clock.start()
            torch.mm(a, b)
            best = min(best, clock.stop())
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32_before
    return MatmulPeak(dtype=dtype, n=n, reps=reps, tflops=2.0 * n**3 / best / 1e12)
