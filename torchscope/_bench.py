"""The reference fine-tune benchmark behind ``torchscope bench``.

A torchvision classifier gets a new head, then trains with its backbone frozen (``frozen``) or
everything trainable (``full``). Each mode is measured in timed windows of steps, synchronising the
device only at window edges, and interleaved with windows of a plain hand-written loop doing the
same steps on the same model (the baseline), so the harness proves that it adds nothing.

The collector returns a :class:`BenchResult`: plain frozen dataclasses holding every raw window
time and the summary, with ``to_dict()`` in a stable schema (``torchscope.bench/1``) and
``from_dict()`` to read it back for ``--compare``.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchscope._bench_stats import (
    WindowStats,
    achieved_tflops,
    datasheet_peak,
    median,
    mfu,
    next_bisect,
    paired_ratio,
    scaling_efficiency,
    summarize_windows,
)
from torchscope.errors import TorchscopeError

SCHEMA = "torchscope.bench/1"
MODES: tuple[str, ...] = ("frozen", "full")
AMP_MODES: tuple[str, ...] = ("off", "bf16", "fp16")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: ``progress(phase, done, total)``; total 0 when the number of steps is not known in advance.
ProgressFn = Callable[[str, int, int], None]
#: Called with each trial batch size of ``batch_size="auto"`` before its steps run.
OomProbe = Callable[[int], None]

_DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------
# The result: plain data


def _tuple_f(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class BenchConfig:
    """What was asked for; ``batch_size`` is ``"auto"`` or the fixed size."""

    model: str
    modes: tuple[str, ...]
    device: str
    batch_size: int | str
    max_batch_size: int | None
    image_size: int
    num_classes: int
    steps: int
    windows: int
    warmup: int
    optimizer: str
    lr: float
    amp: str
    channels_last: bool
    compile: bool
    compile_mode: str
    data: str | None
    workers: int
    baseline: bool
    seed: int

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["modes"] = list(self.modes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        values = {k: data[k] for k in cls.__dataclass_fields__}
        values["modes"] = tuple(values["modes"])
        return cls(**values)


@dataclass(frozen=True)
class Environment:
    """Where it ran: device, versions, precision flags, threads."""

    device: str
    device_name: str
    torch: str
    torchvision: str
    cuda: str | None
    cudnn: int | None
    python: str
    platform: str
    threads: int
    interop_threads: int
    tf32_matmul: bool
    tf32_cudnn: bool
    float32_matmul_precision: str
    cudnn_benchmark: bool
    compute_dtype: str
    memory_format: str
    compile: str
    world_size: int
    backend: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Environment:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class MatmulPeak:
    """A square matmul timed in the same run: what this device reaches in ``dtype``."""

    dtype: str
    n: int
    reps: int
    tflops: float

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "n": self.n, "reps": self.reps, "tflops": self.tflops}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatmulPeak:
        return cls(str(data["dtype"]), int(data["n"]), int(data["reps"]), float(data["tflops"]))


@dataclass(frozen=True)
class Timing:
    """Raw window times of one loop and their summary."""

    window_s: tuple[float, ...]
    steps_per_window: int
    images_per_step: int
    stats: WindowStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_s": list(self.window_s),
            "steps_per_window": self.steps_per_window,
            "images_per_step": self.images_per_step,
            "summary": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(
            _tuple_f(data["window_s"]),
            int(data["steps_per_window"]),
            int(data["images_per_step"]),
            WindowStats.from_dict(data["summary"]),
        )


@dataclass(frozen=True)
class Warmup:
    """Warm-up step times; ``compile_s`` is the first step's excess over a warm step (with --compile)."""

    step_s: tuple[float, ...]
    first_step_s: float
    compile_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"step_s": list(self.step_s), "first_step_s": self.first_step_s, "compile_s": self.compile_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Warmup:
        compile_s = data["compile_s"]
        return cls(
            _tuple_f(data["step_s"]),
            float(data["first_step_s"]),
            None if compile_s is None else float(compile_s),
        )


@dataclass(frozen=True)
class Efficiency:
    """FLOPs per step (counted on a real step), achieved TFLOP/s and MFU with its basis."""

    flops_per_step: int
    tflops: float
    compute_dtype: str
    datasheet_key: str | None
    datasheet_peak_tflops: float | None
    mfu_datasheet: float | None
    measured_peak_tflops: float | None
    mfu_measured: float | None
    basis: str
    mfu: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Efficiency:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Memory:
    """Peak memory of the warm-up and timed windows; ``source`` says how it was measured."""

    source: str
    peak_allocated_bytes: int | None
    peak_reserved_bytes: int | None
    peak_rss_bytes: int | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Memory:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class CheckSummary:
    """The freeze invariants of ``check_step`` on one more step after timing."""

    ok: bool
    violations: tuple[str, ...]
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "violations": list(self.violations), "report": self.report}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckSummary:
        return cls(bool(data["ok"]), tuple(data["violations"]), dict(data["report"]))


@dataclass(frozen=True)
class DistributedStats:
    """DDP figures: global and per-rank throughput, and scaling against one process."""

    world_size: int
    backend: str
    global_window_s: tuple[float, ...]
    global_img_s: float
    per_rank_img_s: tuple[float, ...]
    single_window_s: tuple[float, ...]
    single_img_s: float
    scaling_efficiency: float

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("global_window_s", "per_rank_img_s", "single_window_s"):
            out[k] = list(out[k])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistributedStats:
        return cls(
            int(data["world_size"]),
            str(data["backend"]),
            _tuple_f(data["global_window_s"]),
            float(data["global_img_s"]),
            _tuple_f(data["per_rank_img_s"]),
            _tuple_f(data["single_window_s"]),
            float(data["single_img_s"]),
            float(data["scaling_efficiency"]),
        )


@dataclass(frozen=True)
class ModeResult:
    """Everything measured for one mode (``frozen`` or ``full``)."""

    mode: str
    batch_size: int
    batch_search: tuple[tuple[int, bool], ...]
    head: str
    total_params: int
    trainable_params: int
    warmup: Warmup
    harness: Timing
    baseline: Timing | None
    ratio: float | None
    efficiency: Efficiency
    memory: Memory
    check: CheckSummary | None
    distributed: DistributedStats | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "batch_size": self.batch_size,
            "batch_search": [{"batch_size": b, "fits": fits} for b, fits in self.batch_search],
            "head": self.head,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "warmup": self.warmup.to_dict(),
            "harness": self.harness.to_dict(),
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "ratio": self.ratio,
            "efficiency": self.efficiency.to_dict(),
            "memory": self.memory.to_dict(),
            "check": None if self.check is None else self.check.to_dict(),
            "distributed": None if self.distributed is None else self.distributed.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModeResult:
        return cls(
            mode=str(data["mode"]),
            batch_size=int(data["batch_size"]),
            batch_search=tuple((int(t["batch_size"]), bool(t["fits"])) for t in data["batch_search"]),
            head=str(data["head"]),
            total_params=int(data["total_params"]),
            trainable_params=int(data["trainable_params"]),
            warmup=Warmup.from_dict(data["warmup"]),
            harness=Timing.from_dict(data["harness"]),
            baseline=None if data["baseline"] is None else Timing.from_dict(data["baseline"]),
            ratio=None if data["ratio"] is None else float(data["ratio"]),
            efficiency=Efficiency.from_dict(data["efficiency"]),
            memory=Memory.from_dict(data["memory"]),
            check=None if data["check"] is None else CheckSummary.from_dict(data["check"]),
            distributed=None
            if data["distributed"] is None
            else DistributedStats.from_dict(data["distributed"]),
        )


@dataclass(frozen=True)
class BenchResult:
    """The whole benchmark: config, environment, matmul peak and one :class:`ModeResult` per mode."""

    config: BenchConfig
    environment: Environment
    matmul_peak: MatmulPeak | None
    modes: tuple[ModeResult, ...]
    schema: str = SCHEMA

    @property
    def ok(self) -> bool:
        """False when a freeze invariant was violated in any mode."""
        return all(m.check is None or m.check.ok for m in self.modes)

    def mode(self, name: str) -> ModeResult:
        """The result of mode ``name``."""
        for m in self.modes:
            if m.mode == name:
                return m
        raise TorchscopeError(f"mode {name!r} was not run; this result has {[m.mode for m in self.modes]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "config": self.config.to_dict(),
            "environment": self.environment.to_dict(),
            "matmul_peak": None if self.matmul_peak is None else self.matmul_peak.to_dict(),
            "modes": [m.to_dict() for m in self.modes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """Read a ``to_dict()`` back (for ``--compare``); a foreign file raises a TorchscopeError."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise TorchscopeError(
                f"not a torchscope bench result (schema {found!r}, expected {SCHEMA!r}); "
                "write one with `torchscope bench --json out.json`"
            )
        try:
            return cls(
                config=BenchConfig.from_dict(data["config"]),
                environment=Environment.from_dict(data["environment"]),
                matmul_peak=None
                if data["matmul_peak"] is None
                else MatmulPeak.from_dict(data["matmul_peak"]),
                modes=tuple(ModeResult.from_dict(m) for m in data["modes"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TorchscopeError(
                f"bench result is incomplete or malformed ({type(exc).__name__}: {exc}); re-run `torchscope bench --json`"
            ) from None


# ---------------------------------------------------------------------------------------------
# Batch-size search


def is_oom_error(exc: BaseException) -> bool:
    """True for an out-of-memory error from any device (CUDA's OutOfMemoryError, a failed CPU alloc)."""
    # torch.OutOfMemoryError is torch >= 2.5's name for torch.cuda.OutOfMemoryError
    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and (
        "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower()
    )


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def find_batch_size(
    trial: Callable[[int], None],
    *,
    start: int = 1,
    limit: int = 1024,
    is_oom: Callable[[BaseException], bool] = is_oom_error,
) -> tuple[int, tuple[tuple[int, bool], ...]]:
    """The largest batch size that fits: double from ``start`` until out of memory, then bisect.

    ``trial(b)`` runs a few real steps at batch size ``b`` and raises on OOM; memory is freed
    between trials. Returns the best size and every ``(size, fits)`` trial in order.

    >>> def trial(b):
    ...     if b > 40:
    ...         raise torch.OutOfMemoryError("fake")
    >>> find_batch_size(trial, start=8)
    (40, ((8, True), (16, True), (32, True), (64, False), (48, False), (40, True), (44, False), (42, False), (41, False)))
    """
    if start < 1 or limit < start:
        raise TorchscopeError(f"batch-size search needs 1 <= start ({start}) <= limit ({limit})")
    trials: list[tuple[int, bool]] = []

    def attempt(b: int) -> bool:
        fits = True
        try:
            trial(b)
        except BaseException as exc:
            if not is_oom(exc):
                raise
            fits = False
        if not fits:
            # collected outside the except block, once the traceback (and the tensors its frames
            # hold) is gone
            gc.collect()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        trials.append((b, fits))
        return fits

    lo: int | None = None
    hi: int | None = None
    b = start
    while lo is None:
        if attempt(b):
            lo = b
        elif b == 1:
            raise TorchscopeError(
                "batch size 1 does not fit in memory; try a smaller --image-size, --amp bf16, or --mode frozen"
            )
        else:
            hi, b = b, b // 2
    while hi is None and lo < limit:
        nxt = min(lo * 2, limit)
        if attempt(nxt):
            lo = nxt
        else:
            hi = nxt
            break
    if hi is not None:
        mid = next_bisect(lo, hi)
        while mid is not None:
            if attempt(mid):
                lo = mid
            else:
                hi = mid
            mid = next_bisect(lo, hi)
    return lo, tuple(trials)


# ---------------------------------------------------------------------------------------------
# Devices, environment, distributed


@dataclass
class _Dist:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    owned: bool


def _dist_from_env() -> tuple[int, int, int] | None:
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


def _resolve_device(device: str | None, local_rank: int | None) -> torch.device:
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


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _tf32_flags() -> tuple[bool, bool]:
    # torch >= 2.9 prefers the fp32_precision API; the allow_tf32 properties still answer.
    matmul = bool(getattr(torch.backends.cuda.matmul, "allow_tf32", False))
    cudnn = bool(getattr(torch.backends.cudnn, "allow_tf32", False))
    return matmul or torch.get_float32_matmul_precision() != "highest", cudnn


def _compute_dtype(amp: str, device: torch.device) -> str:
    if amp != "off":
        return amp
    if device.type == "cuda":
        matmul_tf32, cudnn_tf32 = _tf32_flags()
        # convolutions dominate the reference models, and cuDNN runs them in TF32 when allowed
        return "tf32" if (matmul_tf32 or cudnn_tf32) else "fp32"
    return "fp32"


def _environment(
    device: torch.device, amp: str, channels_last: bool, compile_mode: str | None, dist: _Dist | None
) -> Environment:
    import torchvision

    matmul_tf32, cudnn_tf32 = _tf32_flags()
    cuda = device.type == "cuda"
    return Environment(
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if cuda else _cpu_name(),
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
        compute_dtype=_compute_dtype(amp, device),
        memory_format="channels_last" if channels_last else "contiguous",
        compile=compile_mode or "off",
        world_size=dist.world_size if dist else 1,
        backend=dist.backend if dist else None,
    )


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
    clock = _Clock(dev)
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


class _Clock:
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


def _reset_peak_memory(device: torch.device) -> str:
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


def _peak_memory(device: torch.device, source: str) -> Memory:
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
# Model, data, step


def _model_name(spec: str | nn.Module) -> str:
    return spec if isinstance(spec, str) else type(spec).__name__


def _load(spec: str, device: torch.device) -> nn.Module:
    from torchscope._loader import load_model

    return load_model(spec, device=device)


def _default_image_size(spec: str | nn.Module) -> int:
    if isinstance(spec, str):
        from torchscope._loader import default_input_size

        return int(default_input_size(spec)[-1])
    return 224


def _frozen_norms(model: nn.Module) -> list[nn.Module]:
    """Norm layers with running stats whose own params are all frozen (or that have none)."""
    out: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            if not any(p.requires_grad for p in m.parameters(recurse=False)):
                out.append(m)
    return out


def _train_mode(model: nn.Module, frozen_norms: Sequence[nn.Module]) -> None:
    model.train()
    # the second half of "frozen": frozen norm layers must not update their running stats
    for m in frozen_norms:
        m.eval()


def _logits(out: Any) -> torch.Tensor:
    """The main logits of a classifier's output (inception/googlenet return aux logits in train mode)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TorchscopeError(
        f"the model returned {type(out).__name__}, not logits; bench needs a classifier that returns a tensor"
    )


def _make_optimizer(name: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.05)


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


class _TrainStep:
    """torchscope's training step: forward under autocast, cross-entropy, backward, optimizer step."""

    def __init__(
        self,
        forward: Callable[[torch.Tensor], Any],
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        device: torch.device,
        amp_dtype: torch.dtype | None,
    ) -> None:
        self.forward = forward
        self.criterion = criterion
        self.optimizer = optimizer
        self.scaler = scaler
        self.device = device
        self.amp_dtype = amp_dtype

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with _autocast(self.device, self.amp_dtype):
            loss = self.criterion(_logits(self.forward(images)), targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss


class _Batches:
    """Synthetic tensors made once on the device, or an endless ImageFolder loader."""

    def __init__(
        self,
        device: torch.device,
        batch_size: int,
        image_size: int,
        num_classes: int,
        channels_last: bool,
        loader: Any | None = None,
        sampler: Any | None = None,
    ) -> None:
        self.device = device
        self.channels_last = channels_last
        self.loader = loader
        self.sampler = sampler
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None
        self._it: Iterator[Any] | None = None
        if loader is None:
            images = torch.randn(batch_size, 3, image_size, image_size, device=device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = torch.randint(0, num_classes, (batch_size,), device=device)
            self.fixed = (images, targets)
        else:
            self._it = self._endless()

    def _endless(self) -> Iterator[Any]:
        epoch = 0
        while self.loader is not None:
            if self.sampler is not None:
                self.sampler.set_epoch(epoch)
            yield from self.loader
            epoch += 1

    def raw(self) -> Any:
        """The next raw (images, targets) from the loader, still on the host."""
        if self._it is None:  # pragma: no cover - only called with a loader
            raise TorchscopeError("no data loader")
        return next(self._it)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fixed is not None:
            return self.fixed
        images, targets = self.raw()
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, targets.to(self.device, non_blocking=True)


def _image_folder(
    path: Path, image_size: int, batch_size: int, workers: int, pin: bool, dist: _Dist | None
) -> tuple[Any, Any, int]:
    import torchvision
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler
    from torchvision import transforms

    if not path.is_dir():
        raise TorchscopeError(
            f"--data {str(path)!r} is not a directory; give an ImageFolder root (one folder per class)"
        )
    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(_IMAGENET_MEAN, _IMAGENET_STD),
        ]
    )
    try:
        dataset = torchvision.datasets.ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, RuntimeError) as exc:
        raise TorchscopeError(
            f"--data {str(path)!r} is not an ImageFolder ({exc}); put images in PATH/<class>/*.jpg"
        ) from None
    per_rank = len(dataset) // (dist.world_size if dist else 1)
    if per_rank < batch_size:
        raise TorchscopeError(
            f"--data {str(path)!r} has {len(dataset)} images, fewer than one batch of {batch_size} per process; "
            "use a smaller --batch-size or more images"
        )
    sampler: Any = DistributedSampler(dataset, shuffle=True, drop_last=True) if dist else None
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    return loader, sampler, len(dataset.classes)


# ---------------------------------------------------------------------------------------------
# The loops


def _harness_window(step: _TrainStep, batches: _Batches, steps: int) -> None:
    if batches.fixed is not None:
        images, targets = batches.fixed
        for _ in range(steps):
            step(images, targets)
    else:
        for _ in range(steps):
            images, targets = batches.next()
            step(images, targets)


def _baseline_window(
    model: Callable[[torch.Tensor], Any],
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    batches: _Batches,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    steps: int,
) -> None:
    # The loop a user writes after torchvision's reference train_one_epoch, minus its logging:
    # nothing of torchscope's step, batch or timing helpers is used here.
    fixed = batches.fixed
    for _ in range(steps):
        if fixed is not None:
            image, target = fixed
        else:
            image, target = batches.raw()
            image = image.to(device, non_blocking=True)
            if channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            target = target.to(device, non_blocking=True)
        if amp_dtype is None:
            output = model(image)
            if not isinstance(output, torch.Tensor):
                output = _logits(output)
            loss = criterion(output, target)
        else:
            with torch.autocast(device.type, dtype=amp_dtype):
                output = model(image)
                if not isinstance(output, torch.Tensor):
                    output = _logits(output)
                loss = criterion(output, target)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()


def _count_flops(step: _TrainStep, batches: _Batches) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    images, targets = batches.next()
    counter = FlopCounterMode(display=False)
    with counter:
        step(images, targets)
    return int(counter.get_total_flops())


def _warm_up(
    step: _TrainStep, batches: _Batches, clock: _Clock, warmup: int, report: Callable[[int, int], None]
) -> list[float]:
    """At least ``warmup`` steps, then on until step times settle (compilation, autotune), capped."""
    times: list[float] = []
    cap = 3 * warmup + 3
    while len(times) < cap:
        images, targets = batches.next()
        clock.start()
        step(images, targets)
        times.append(clock.stop())
        report(len(times), max(warmup, len(times)))
        if len(times) >= warmup and _settled(times):
            break
    return times


def _settled(times: Sequence[float]) -> bool:
    # the first step always carries one-time costs, so at least two are needed to judge
    if len(times) < 2:
        return False
    recent = list(times[-3:]) if len(times) > 3 else list(times[1:])
    return max(recent) <= 1.25 * median(recent)


# ---------------------------------------------------------------------------------------------
# One mode


@dataclass
class _Plan:
    spec: str | nn.Module
    device: torch.device
    batch_size: int | None
    max_batch_size: int
    image_size: int
    num_classes: int
    steps: int
    windows: int
    warmup: int
    optimizer: str
    lr: float
    amp: str
    channels_last: bool
    compile_mode: str | None
    data: Path | None
    workers: int
    baseline: bool
    check: bool
    seed: int
    progress: ProgressFn | None
    oom_probe: OomProbe | None
    dist: _Dist | None
    peak: MatmulPeak | None

    def report(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]


def _build(plan: _Plan, mode: str) -> tuple[nn.Module, str, list[nn.Module]]:
    torch.manual_seed(plan.seed)
    if isinstance(plan.spec, nn.Module):
        # the user's own model is never trained: each mode gets a fresh copy
        model = copy.deepcopy(plan.spec).to(plan.device)
    else:
        model = _load(plan.spec, plan.device)
    from torchscope._freeze import freeze_backbone, replace_head

    head = replace_head(model, plan.num_classes)
    if mode == "frozen":
        head = freeze_backbone(model)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    norms = _frozen_norms(model)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    _train_mode(model, norms)
    return model, head, norms


def _scaler(plan: _Plan) -> torch.amp.GradScaler | None:
    return torch.amp.GradScaler(plan.device.type) if plan.amp == "fp16" else None


def _search_batch(plan: _Plan, mode: str, model: nn.Module) -> tuple[int, tuple[tuple[int, bool], ...]]:
    params = [p for p in model.parameters() if p.requires_grad]

    def trial(b: int) -> None:
        if plan.oom_probe is not None:
            plan.oom_probe(b)
        optimizer = _make_optimizer(plan.optimizer, params, plan.lr)
        step = _TrainStep(model, nn.CrossEntropyLoss(), optimizer, _scaler(plan), plan.device, plan.amp_dtype)
        batches = _Batches(plan.device, b, plan.image_size, plan.num_classes, plan.channels_last)
        # two steps: optimizer state (momentum, Adam moments) is allocated at the first one
        for _ in range(2):
            step(*batches.next())
        _Clock(plan.device).sync()
        plan.report(f"{mode}: batch size search", len(trials_done) + 1, 0)
        trials_done.append(b)

    trials_done: list[int] = []
    start = 1 if plan.device.type == "cpu" else 8
    best, trials = find_batch_size(trial, start=min(start, plan.max_batch_size), limit=plan.max_batch_size)
    for p in params:
        p.grad = None
    if plan.dist is not None:
        # every rank must run the same batch: the smallest that fits everywhere
        t = torch.tensor([best], device=plan.device if plan.dist.backend == "nccl" else "cpu")
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        best = int(t.item())
    return best, trials


def _run_mode(plan: _Plan, mode: str) -> ModeResult:
    dist = plan.dist
    device = plan.device
    model, head, norms = _build(plan, mode)
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    trainable = sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
    params = [p for p in model.parameters() if p.requires_grad]

    search: tuple[tuple[int, bool], ...] = ()
    if plan.batch_size is None:
        batch_size, search = _search_batch(plan, mode, model)
        _train_mode(model, norms)
    else:
        batch_size = plan.batch_size

    sampler: Any = None
    loader: Any = None
    if plan.data is not None:
        loader, sampler, _ = _image_folder(
            plan.data, plan.image_size, batch_size, plan.workers, device.type == "cuda", dist
        )
    batches = _Batches(
        device, batch_size, plan.image_size, plan.num_classes, plan.channels_last, loader, sampler
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = _make_optimizer(plan.optimizer, params, plan.lr)
    scaler = _scaler(plan)
    clock = _Clock(device)

    single: list[float] = []
    if dist is not None:
        single = _single_process_reference(plan, mode, model, criterion, optimizer, batches, clock)

    eager: Callable[[torch.Tensor], Any] = model
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        eager = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward: Callable[[torch.Tensor], Any] = eager
    if plan.compile_mode is not None:
        forward = torch.compile(eager, mode=plan.compile_mode)

    # FLOPs of one real step, counted eagerly by the dispatcher (compiled graphs hide their ops);
    # in frozen mode no backward runs through the backbone, so none is counted
    flops = _count_flops(_TrainStep(eager, criterion, optimizer, scaler, device, plan.amp_dtype), batches)
    _train_mode(model, norms)

    memory_source = _reset_peak_memory(device)
    step = _TrainStep(forward, criterion, optimizer, scaler, device, plan.amp_dtype)
    warm = _warm_up(step, batches, clock, plan.warmup, lambda d, t: plan.report(f"{mode}: warm-up", d, t))

    harness_s: list[float] = []
    baseline_s: list[float] = []
    loops = 2 if plan.baseline else 1
    total_windows = plan.windows * loops
    done = 0
    for w in range(plan.windows):
        # ABBA order: harness and baseline alternate who goes first, so drift hits both alike
        order = ("harness", "baseline") if w % 2 == 0 else ("baseline", "harness")
        for which in order if plan.baseline else ("harness",):
            if dist is not None:
                torch.distributed.barrier()
            clock.start()
            if which == "harness":
                _harness_window(step, batches, plan.steps)
            else:
                _baseline_window(
                    forward,
                    criterion,
                    optimizer,
                    scaler,
                    batches,
                    device,
                    plan.amp_dtype,
                    plan.channels_last,
                    plan.steps,
                )
            elapsed = clock.stop()
            (harness_s if which == "harness" else baseline_s).append(elapsed)
            done += 1
            plan.report(f"{mode}: timing", done, total_windows)
    memory = _peak_memory(device, memory_source)

    harness = Timing(
        tuple(harness_s),
        plan.steps,
        batch_size,
        summarize_windows(harness_s, steps=plan.steps, images_per_step=batch_size),
    )
    baseline = None
    if plan.baseline:
        baseline = Timing(
            tuple(baseline_s),
            plan.steps,
            batch_size,
            summarize_windows(baseline_s, steps=plan.steps, images_per_step=batch_size),
        )
    step_s = median(harness_s) / plan.steps
    eff = efficiency(
        flops,
        step_s,
        _compute_dtype(plan.amp, device),
        torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        plan.peak.tflops if plan.peak is not None else None,
    )
    distributed = _gather_distributed(plan, harness_s, single, batch_size) if dist is not None else None

    check = _check(plan, model, step, batches, optimizer) if plan.check else None

    first = warm[0]
    rest = warm[1:]
    compile_s = max(0.0, first - median(rest)) if plan.compile_mode is not None and rest else None
    result = ModeResult(
        mode=mode,
        batch_size=batch_size,
        batch_search=search,
        head=head,
        total_params=total,
        trainable_params=trainable,
        warmup=Warmup(tuple(warm), first, compile_s),
        harness=harness,
        baseline=baseline,
        ratio=paired_ratio(harness_s, baseline_s) if baseline else None,
        efficiency=eff,
        memory=memory,
        check=check,
        distributed=distributed,
    )
    del model, eager, forward, step, optimizer, batches
    _free_memory()
    return result


def _single_process_reference(
    plan: _Plan,
    mode: str,
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: _Batches,
    clock: _Clock,
) -> list[float]:
    """Rank 0 alone runs the same per-rank batch without DDP, while the other ranks wait."""
    dist = plan.dist
    windows: list[float] = []
    if dist is not None and dist.rank == 0:
        forward: Callable[[torch.Tensor], Any] = model
        if plan.compile_mode is not None:
            forward = torch.compile(model, mode=plan.compile_mode)
        step = _TrainStep(forward, criterion, optimizer, _scaler(plan), plan.device, plan.amp_dtype)
        _warm_up(
            step,
            batches,
            clock,
            plan.warmup,
            lambda d, t: plan.report(f"{mode}: single-process warm-up", d, t),
        )
        for w in range(plan.windows):
            clock.start()
            _harness_window(step, batches, plan.steps)
            windows.append(clock.stop())
            plan.report(f"{mode}: single-process timing", w + 1, plan.windows)
    torch.distributed.barrier()
    return windows


def _gather_distributed(
    plan: _Plan, harness_s: list[float], single: list[float], batch_size: int
) -> DistributedStats:
    import torch.distributed as tdist

    dist = plan.dist
    if dist is None:  # pragma: no cover - only called under torchrun
        raise RuntimeError("_gather_distributed needs a process group")
    on = plan.device if dist.backend == "nccl" else torch.device("cpu")
    windows = torch.tensor(harness_s, dtype=torch.float64, device=on)
    slowest = windows.clone()
    tdist.all_reduce(slowest, op=tdist.ReduceOp.MAX)
    own = torch.tensor([plan.steps * batch_size / median(harness_s)], dtype=torch.float64, device=on)
    per_rank = [torch.zeros_like(own) for _ in range(dist.world_size)]
    tdist.all_gather(per_rank, own)
    ref = torch.tensor(single if dist.rank == 0 else [0.0] * plan.windows, dtype=torch.float64, device=on)
    tdist.broadcast(ref, src=0)
    global_s = [float(x) for x in slowest.tolist()]
    single_s = [float(x) for x in ref.tolist()]
    global_img_s = median([dist.world_size * batch_size * plan.steps / t for t in global_s])
    single_img_s = median([batch_size * plan.steps / t for t in single_s])
    return DistributedStats(
        world_size=dist.world_size,
        backend=dist.backend,
        global_window_s=tuple(global_s),
        global_img_s=global_img_s,
        per_rank_img_s=tuple(float(t.item()) for t in per_rank),
        single_window_s=tuple(single_s),
        single_img_s=single_img_s,
        scaling_efficiency=scaling_efficiency(global_img_s, dist.world_size, single_img_s),
    )


def efficiency(
    flops_per_step: int,
    step_s: float,
    compute_dtype: str,
    device_name: str | None,
    measured_peak: float | None,
) -> Efficiency:
    """Achieved TFLOP/s and MFU; the datasheet peak is the basis when ``device_name`` is in the table.

    >>> e = efficiency(int(2.4e12), 0.01, "bf16", "NVIDIA H100 80GB HBM3", 700.0)
    >>> e.basis, round(e.tflops), round(e.mfu, 3), round(e.mfu_measured, 3)
    ('datasheet', 240, 0.243, 0.343)
    """
    dtype = compute_dtype
    flops = flops_per_step
    measured = measured_peak
    achieved = achieved_tflops(flops, step_s)
    sheet = datasheet_peak(device_name, dtype) if device_name else None
    mfu_sheet = mfu(achieved, sheet[1]) if sheet else None
    mfu_meas = mfu(achieved, measured) if measured else None
    basis = "datasheet" if sheet else "measured" if measured else "none"
    return Efficiency(
        flops_per_step=flops,
        tflops=achieved,
        compute_dtype=dtype,
        datasheet_key=sheet[0] if sheet else None,
        datasheet_peak_tflops=sheet[1] if sheet else None,
        mfu_datasheet=mfu_sheet,
        measured_peak_tflops=measured,
        mfu_measured=mfu_meas,
        basis=basis,
        mfu=mfu_sheet if sheet else mfu_meas,
    )


def _check(
    plan: _Plan, model: nn.Module, step: _TrainStep, batches: _Batches, optimizer: torch.optim.Optimizer
) -> CheckSummary:
    from torchscope._check import check_step

    images, targets = batches.next()
    report = check_step(model, lambda: step(images, targets), optimizer=optimizer)
    lines = tuple(f"{v.kind} {v.name}: {v.cause}" for v in report.violations)
    return CheckSummary(ok=bool(report.ok), violations=lines, report=report.to_dict())


# ---------------------------------------------------------------------------------------------
# The entry point


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TorchscopeError(f"{name}={value!r} must be an integer >= {minimum}")


def bench(
    model: str | nn.Module = "resnet50",
    *,
    mode: str = "both",
    device: str | None = None,
    batch_size: int | str = 32,
    max_batch_size: int | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
    steps: int = 10,
    windows: int = 5,
    warmup: int = 3,
    optimizer: str = "sgd",
    lr: float | None = None,
    amp: str = "off",
    channels_last: bool = False,
    compile: bool = False,
    compile_mode: str = "default",
    data: str | Path | None = None,
    workers: int | None = None,
    baseline: bool = True,
    check: bool = True,
    measure_peak: bool = True,
    seed: int = 0,
    progress: ProgressFn | None = None,
    oom_probe: OomProbe | None = None,
) -> BenchResult:
    """Benchmark a reference fine-tune of ``model`` (frozen backbone and/or full) against a plain loop.

    ``model`` is a spec the loader resolves (``"resnet18"``) or a module, which is copied and never
    trained. ``batch_size="auto"`` searches the largest batch that fits, per mode; ``oom_probe(b)``
    is called before each trial (raise ``torch.OutOfMemoryError`` in it to impose a limit).
    Under ``torchrun`` it runs DDP and adds global, per-rank and scaling figures.

    >>> r = bench("resnet18", mode="frozen", device="cpu", batch_size=2, image_size=32,
    ...           steps=1, windows=1, warmup=1, check=False, measure_peak=False)
    >>> r.mode("frozen").harness.stats.img_s_median > 0
    True
    """
    if mode not in (*MODES, "both"):
        raise TorchscopeError(f"mode {mode!r} is not one of frozen, full, both")
    if amp not in AMP_MODES:
        raise TorchscopeError(f"amp {amp!r} is not one of {', '.join(AMP_MODES)}")
    if optimizer not in OPTIMIZERS:
        raise TorchscopeError(f"optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if compile_mode not in COMPILE_MODES:
        raise TorchscopeError(f"compile mode {compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")
    auto = batch_size == "auto"
    if not auto:
        if isinstance(batch_size, str):
            raise TorchscopeError(f"batch size {batch_size!r} must be a positive integer or 'auto'")
        _positive("batch_size", batch_size)
    _positive("steps", steps)
    _positive("windows", windows)
    _positive("warmup", warmup)
    if image_size is not None:
        _positive("image_size", image_size, 8)
    if num_classes is not None:
        _positive("num_classes", num_classes, 2)
    if max_batch_size is not None:
        _positive("max_batch_size", max_batch_size)
    if workers is not None:
        _positive("workers", workers, 0)
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise TorchscopeError(f"lr={lr!r} must be a positive number, e.g. 0.01")

    ranks = _dist_from_env()
    dev = _resolve_device(device, ranks[2] if ranks else None)
    if amp == "fp16" and dev.type == "cpu":
        raise TorchscopeError(
            "--amp fp16 needs a GPU (GradScaler on CPU float16 is not a reference setup); use --amp bf16"
        )
    modes = MODES if mode == "both" else (mode,)
    size = image_size or _default_image_size(model)
    data_path = Path(data) if data is not None else None
    n_workers = workers if workers is not None else (min(4, os.cpu_count() or 1) if data_path else 0)

    classes = num_classes or 10
    if data_path is not None:
        _, _, found = _image_folder(data_path, size, 1, 0, False, None)
        if num_classes is not None and num_classes < found:
            raise TorchscopeError(
                f"--num-classes {num_classes} is fewer than the {found} classes in --data; drop it"
            )
        classes = num_classes or found

    dist: _Dist | None = None
    if ranks is not None:
        import torch.distributed as tdist

        backend = "nccl" if dev.type == "cuda" else "gloo"
        owned = not tdist.is_initialized()
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if owned:
            # binding NCCL to this rank's GPU up front keeps barriers off other ranks' devices
            tdist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
        dist = _Dist(ranks[0], ranks[1], ranks[2], tdist.get_backend(), owned)

    with contextlib.ExitStack() as restore:
        if dist is not None and dist.owned:
            restore.callback(torch.distributed.destroy_process_group)
        restore.callback(setattr, torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
        # models are built under a fixed seed; the caller's RNG streams come back untouched
        restore.enter_context(torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []))
        if dev.type == "cuda":
            # CUDA events and streams belong to the current device: make it ours (cuda:1 too)
            restore.enter_context(torch.cuda.device(dev))
            # the reference scripts run with cuDNN autotuning on
            torch.backends.cudnn.benchmark = True
        peak = None
        if measure_peak:
            if progress is not None:
                progress("matmul peak", 0, 1)
            peak = measure_matmul_peak(dev, _compute_dtype(amp, dev))
            if progress is not None:
                progress("matmul peak", 1, 1)
        plan = _Plan(
            spec=model,
            device=dev,
            batch_size=None if auto else int(batch_size),
            max_batch_size=max_batch_size or (1024 if dev.type == "cuda" else 64),
            image_size=size,
            num_classes=classes,
            steps=steps,
            windows=windows,
            warmup=warmup,
            optimizer=optimizer,
            lr=lr or _DEFAULT_LR[optimizer],
            amp=amp,
            channels_last=channels_last,
            compile_mode=compile_mode if compile else None,
            data=data_path,
            workers=n_workers,
            baseline=baseline,
            check=check,
            seed=seed,
            progress=progress,
            oom_probe=oom_probe,
            dist=dist,
            peak=peak,
        )
        results = tuple(_run_mode(plan, m) for m in modes)
        env = _environment(dev, amp, channels_last, plan.compile_mode, dist)
    config = BenchConfig(
        model=_model_name(model),
        modes=modes,
        device=str(dev),
        batch_size="auto" if auto else int(batch_size),
        max_batch_size=plan.max_batch_size if auto else max_batch_size,
        image_size=size,
        num_classes=classes,
        steps=steps,
        windows=windows,
        warmup=warmup,
        optimizer=optimizer,
        lr=plan.lr,
        amp=amp,
        channels_last=channels_last,
        compile=compile,
        compile_mode=compile_mode,
        data=None if data_path is None else str(data_path),
        workers=n_workers,
        baseline=baseline,
        seed=seed,
    )
    return BenchResult(config=config, environment=env, matmul_peak=peak, modes=results)
