"""The fused one-pass statistics kernel behind ``record()`` on the CPU.

``_fused_stats.c`` is compiled on first use with the system C compiler (``$CC``, else ``cc`` or
``gcc``) into the user cache (``$TORCHSCOPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchscope``, else
``~/.cache/torchscope``), keyed by the hash of the source, compiler and flags, and loaded with
ctypes. It reads a dense float32/bfloat16/float16 tensor once, where the torch reductions read it
four times. Anything that stops it (no compiler, a CPU without AVX2, another architecture,
``TORCHSCOPE_FUSED=0``) leaves :func:`library` returning None and ``record()`` on the torch path;
:func:`status` says which. The same library holds the one-pass weighted fingerprint
(:func:`fused_fingerprint`, behind ``check_step``'s fingerprint mode), bit-identical to the torch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from torchscope._paths import CacheDirError, cache_dir

SOURCE = Path(__file__).with_name("_fused_stats.c")
FLAGS: tuple[str, ...] = ("-O2", "-shared", "-fPIC")
# With OpenMP the kernel links libgomp.so.1, which resolves to the copy torch already loaded, so it
# runs on torch's own intra-op threads; a compiler without OpenMP builds it single-threaded.
OPENMP: tuple[tuple[str, ...], ...] = (("-fopenmp",), ())
KINDS: dict[torch.dtype, int] = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}

_status = "not loaded yet"
# switched off by benchmarks and tests that compare against the torch reductions
enabled = True


def status() -> str:
    """Whether the fused kernel is in use, or why not (after the first :func:`library` call).

    >>> library() is not None or status() != "in use"
    True
    """
    return _status


def _compile(cc: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # compile beside the target, then rename: parallel processes never load a half-written file
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        for extra in OPENMP:
            try:
                subprocess.run(
                    [cc, *FLAGS, *extra, "-o", tmp, str(SOURCE), "-lm"],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                break
            except subprocess.CalledProcessError:
                if not extra:
                    raise
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernel, or None when it cannot be used here (see :func:`status`)."""
    global _status
    if os.environ.get("TORCHSCOPE_FUSED", "1").strip().lower() in {"0", "false", "no", "off"}:
        _status = "disabled by TORCHSCOPE_FUSED=0"
        return None
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        _status = f"no kernel for {platform.machine()} (x86-64 only)"
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        _status = "no C compiler found (set CC, or install gcc)"
        return None
    build = "\0".join((cc, *FLAGS, *(" ".join(o) for o in OPENMP)))
    digest = hashlib.sha256(SOURCE.read_bytes() + build.encode()).hexdigest()[:16]
    try:
        target = cache_dir() / "kernels" / f"fused_stats-{digest}.so"
    except CacheDirError as exc:
        _status = f"no cache folder to build into: {exc}"
        return None
    try:
        if not target.is_file():
            _compile(cc, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        first = detail.decode(errors="replace").strip().splitlines()[:1]
        _status = f"build failed: {first[0] if first else exc}"
        return None
    lib.ts_cpu_ok.restype = ctypes.c_int
    if not lib.ts_cpu_ok():
        _status = "this CPU lacks AVX2/FMA/F16C"
        return None
    lib.ts_stats.restype = None
    lib.ts_stats.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    lib.ts_fingerprint.restype = ctypes.c_uint64
    lib.ts_fingerprint.argtypes = [
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    ]  # fmt: skip
    _status = "in use"
    return lib


def dense(x: torch.Tensor) -> bool:
    """Whether ``x``'s elements fill ``numel`` consecutive slots from ``data_ptr()`` (any order).

    >>> dense(torch.zeros(2, 3).t()), dense(torch.zeros(4, 4)[:, ::2])
    (True, False)
    """
    if x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return True
    expected = 1
    for size, stride in sorted(
        (p for p in zip(x.shape, x.stride(), strict=True) if p[0] != 1), key=lambda p: p[1]
    ):
        if stride != expected:
            return False
        expected *= size
    return True


def fused_stats(x: torch.Tensor) -> torch.Tensor | None:
    """``tensor_stats(x)`` in one pass, or None when the kernel does not apply to ``x``.

    >>> s = fused_stats(torch.tensor([0.0, 2.0, -2.0, 4.0]))
    >>> s is None or [round(v, 4) for v in s.tolist()] == [1.0, 2.582, -2.0, 4.0, 4.0, 0.25, 0.0, 0.0]
    True
    """
    kind = KINDS.get(x.dtype)
    if (
        not enabled
        or kind is None
        or x.device.type != "cpu"
        or x.layout != torch.strided
        or x.numel() == 0
        or not dense(x)
    ):
        return None
    lib = library()
    if lib is None:
        return None
    out = torch.empty(8, dtype=torch.float64)
    lib.ts_stats(x.data_ptr(), x.numel(), kind, torch.get_num_threads(), out.data_ptr())
    return out


def fused_fingerprint(bits: torch.Tensor, weights: torch.Tensor, chunk: int) -> int | None:
    """The weighted fingerprint of ``_fingerprint.py`` in one pass over ``bits``, or None when the
    kernel does not apply (not a contiguous CPU tensor of 1/2/4-byte elements, or no kernel).

    ``bits`` is the tensor's bit-pattern view (8-byte elements as two 4-byte halves), ``weights``
    the ``chunk`` odd 32-bit weights as int32 (the bits of ``_fingerprint.py``'s, packed); the
    result is the same unsigned 64-bit value the chunked torch reduction gives.
    """
    if (
        not enabled
        or bits.device.type != "cpu"
        or bits.layout != torch.strided
        or not bits.is_contiguous()
        or bits.element_size() not in (1, 2, 4)
        or weights.dtype != torch.int32
        or not weights.is_contiguous()
        or weights.numel() < chunk
    ):
        return None
    lib = library()
    if lib is None:
        return None
    value = lib.ts_fingerprint(
        bits.data_ptr(), bits.numel(), bits.element_size(), weights.data_ptr(), chunk, torch.get_num_threads()
    )
    return int(value)
