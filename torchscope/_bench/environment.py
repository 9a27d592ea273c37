"""Where a benchmark ran: versions, device name, precision flags and threads, as an :class:`Environment`."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch
import torchvision

from torchscope._bench.device import Dist
from torchscope._bench.schema import Environment


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def tf32_flags() -> tuple[bool, bool]:
    """(TF32 matmuls allowed, TF32 cuDNN convolutions allowed)."""
    # torch >= 2.9 prefers the fp32_precision API; the allow_tf32 properties still answer.
    matmul = bool(getattr(torch.backends.cuda.matmul, "allow_tf32", False))
    cudnn = bool(getattr(torch.backends.cudnn, "allow_tf32", False))
    return matmul or torch.get_float32_matmul_precision() != "highest", cudnn


def compute_dtype(amp: str, device: torch.device) -> str:
    """The dtype the model's arithmetic runs in: the autocast dtype, else tf32 or fp32."""
    if amp != "off":
        return amp
    if device.type == "cuda":
        matmul_tf32, cudnn_tf32 = tf32_flags()
        # convolutions dominate the reference models, and cuDNN runs them in TF32 when allowed
        return "tf32" if (matmul_tf32 or cudnn_tf32) else "fp32"
    return "fp32"


def capture_environment(
    device: torch.device, amp: str, channels_last: bool, compile_mode: str | None, dist: Dist | None
) -> Environment:
    """The :class:`Environment` of this process, now."""
    matmul_tf32, cudnn_tf32 = tf32_flags()
    cuda = device.type == "cuda"
    return Environment(
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if cuda else cpu_name(),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        python=platform.python_version(),
        platform=platform.platform(),
        threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads(),
        tf32_matmul=matmul_tf32,
        tf32_cudnn=cudnn_tf32,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        compute_dtype=compute_dtype(amp, device),
        memory_format="channels_last" if channels_last else "contiguous",
        compile=compile_mode or "off",
        world_size=dist.world_size if dist else 1,
        backend=dist.backend if dist else None,
    )
