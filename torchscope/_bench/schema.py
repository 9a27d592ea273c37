"""What ``torchscope bench`` is asked for and what it returns: plain frozen dataclasses, no torch.

:class:`BenchConfig` is the run's settings (the collector's one input), :class:`BenchResult` the
whole measurement, with ``to_dict()`` in a stable schema (``torchscope.bench/1``) and ``from_dict()``
to read a saved file back. Nothing here imports torch, so the renderer and ``bench --compare`` read
and show saved results without it.

The verdicts live here too, in the result rather than in a renderer: :attr:`ModeResult.ratio_ok`
(the harness adds nothing: torchscope/baseline >= :data:`RATIO_GOAL`) and
:meth:`BenchResult.failures`, the one rule of the command's exit code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torchscope._bench.stats import WindowStats
from torchscope._progress import ProgressFn as ProgressFn  # where the bench modules have it from
from torchscope._result import Result, check_schema
from torchscope.errors import TorchscopeError

SCHEMA = "torchscope.bench/1"
MODES: tuple[str, ...] = ("frozen", "full")
AMP_MODES: tuple[str, ...] = ("off", "bf16", "fp16")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: The harness must add nothing: torchscope/baseline at or above this passes.
RATIO_GOAL = 0.98

#: Called with each trial batch size of ``batch_size="auto"`` before its steps run.
OomProbe = Callable[[int], None]


def modes_of(mode: str) -> tuple[str, ...]:
    """The modes that ``mode`` names: ``"both"`` is every mode.

    >>> modes_of("both"), modes_of("frozen")
    (('frozen', 'full'), ('frozen',))
    """
    if mode == "both":
        return MODES
    if mode not in MODES:
        raise TorchscopeError(f"mode {mode!r} is not one of frozen, full, both")
    return (mode,)


def tuple_of_floats(values: Sequence[Any]) -> tuple[float, ...]:
    """Every value as a float, in a tuple (JSON lists read back)."""
    return tuple(float(v) for v in values)


# ---------------------------------------------------------------------------------------------
# What was asked for


def _positive(name: str, value: int | None, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TorchscopeError(f"{name}={value!r} must be an integer >= {minimum}")


#: Fields of :class:`BenchConfig` that files written before they existed lack (read as the default).
_ADDED_FIELDS = ("check", "measure_peak", "seq_len", "token_dtype", "hf_config", "task", "num_labels")
#: Integer dtypes token ids may take.
TOKEN_DTYPES: tuple[str, ...] = ("int64", "int32")


@dataclass(frozen=True)
class BenchConfig:
    """The settings of one benchmark run.

    Given to the collector, ``None`` means "choose for me" (``device``: the best found;
    ``image_size``: the model's own; ``num_classes``: 10 or the ImageFolder's; ``lr``: 0.01 for sgd,
    0.001 for adamw; ``workers``: min(4, CPUs) with ``data``; ``max_batch_size``: 1024 on a GPU, 64
    on the CPU). In a result, every choice is filled in with what was used (``max_batch_size`` only
    with ``batch_size="auto"``). ``batch_size`` is ``"auto"`` or the fixed size per process.

    A language model (``hf:``) trains on token ids instead of images: ``seq_len`` tokens per
    sequence (default 128), ``token_dtype`` int64 or int32; ``hf_config`` (field overrides),
    ``task`` and ``num_labels`` are the ``hf:`` loader's options. Its throughput is in tokens/s.

    >>> BenchConfig("resnet18", modes=("frozen",), steps=5).windows
    5
    """

    model: str = "resnet50"
    modes: tuple[str, ...] = MODES
    device: str | None = None
    batch_size: int | str = 32
    max_batch_size: int | None = None
    image_size: int | None = None
    num_classes: int | None = None
    steps: int = 10
    windows: int = 5
    warmup: int = 3
    optimizer: str = "sgd"
    lr: float | None = None
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    data: str | None = None
    workers: int | None = None
    baseline: bool = True
    seed: int = 0
    check: bool = True
    measure_peak: bool = True
    seq_len: int | None = None
    token_dtype: str = "int64"
    hf_config: tuple[tuple[str, Any], ...] = ()
    task: str | None = None
    num_labels: int | None = None

    def validate(self) -> None:
        """Raise a :class:`TorchscopeError` naming the first setting that cannot be run.

        Needs no torch, so the CLI rejects a bad setting before anything heavy is imported.

        >>> BenchConfig(steps=0).validate()
        Traceback (most recent call last):
        torchscope.errors.TorchscopeError: steps=0 must be an integer >= 1
        """
        modes = self.modes
        if not modes or any(m not in MODES for m in modes) or len(set(modes)) < len(modes):
            raise TorchscopeError(f"modes {modes!r} must name frozen and/or full, each once")
        if self.amp not in AMP_MODES:
            raise TorchscopeError(f"amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        if self.optimizer not in OPTIMIZERS:
            raise TorchscopeError(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.compile_mode not in COMPILE_MODES:
            raise TorchscopeError(
                f"compile mode {self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}"
            )
        if self.batch_size != "auto":
            if isinstance(self.batch_size, str):
                raise TorchscopeError(f"batch size {self.batch_size!r} must be a positive integer or 'auto'")
            _positive("batch_size", self.batch_size)
        _positive("steps", self.steps)
        _positive("windows", self.windows)
        _positive("warmup", self.warmup)
        _positive("image_size", self.image_size, 8)
        _positive("num_classes", self.num_classes, 2)
        _positive("max_batch_size", self.max_batch_size)
        _positive("workers", self.workers, 0)
        _positive("seq_len", self.seq_len)
        _positive("num_labels", self.num_labels)
        if self.token_dtype not in TOKEN_DTYPES:
            raise TorchscopeError(f"token dtype {self.token_dtype!r} is not one of {', '.join(TOKEN_DTYPES)}; use long")
        hf = self.hf_config or self.task is not None or self.num_labels is not None
        if hf and not self.model.startswith("hf:"):
            raise TorchscopeError(
                f"--config/--task/--num-labels apply to hf: models, not {self.model!r}; drop them"
            )
        if self.seq_len is not None:
            for given, option in (
                (self.image_size is not None, "--image-size"),
                (self.channels_last, "--channels-last"),
                (self.data is not None, "--data"),
                (self.num_classes is not None, "--num-classes"),
            ):
                if given:
                    fix = "--num-labels" if option == "--num-classes" else "drop it"
                    raise TorchscopeError(f"{option} is for image models; token inputs (--tokens) take none: {fix}")
        lr = self.lr
        if lr is not None and not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
            raise TorchscopeError(f"lr={lr!r} must be a positive number, e.g. 0.01")

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["modes"] = list(self.modes)
        out["hf_config"] = dict(self.hf_config)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data or k not in _ADDED_FIELDS}
        values["modes"] = tuple(values["modes"])
        if "hf_config" in values:
            values["hf_config"] = tuple(dict(values["hf_config"]).items())
        return cls(**values)

    @property
    def unit(self) -> str:
        """What the throughput counts: ``"tokens"`` for token inputs (``seq_len`` set), else ``"images"``."""
        return "tokens" if self.seq_len is not None else "images"


# ---------------------------------------------------------------------------------------------
# What was measured


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
    """Raw window times of one loop and their summary.

    ``unit`` is what the throughput counts: ``"images"``, or ``"tokens"`` for a language model
    (then ``images_per_step`` is tokens per step and the summary's ``img_s_*`` rates are tokens/s:
    the keys keep their names so that files of schema ``torchscope.bench/1`` stay comparable).
    """

    window_s: tuple[float, ...]
    steps_per_window: int
    images_per_step: int
    stats: WindowStats
    unit: str = "images"

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_s": list(self.window_s),
            "steps_per_window": self.steps_per_window,
            "images_per_step": self.images_per_step,
            "unit": self.unit,
            "summary": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        return cls(
            tuple_of_floats(data["window_s"]),
            int(data["steps_per_window"]),
            int(data["images_per_step"]),
            WindowStats.from_dict(data["summary"]),
            str(data.get("unit", "images")),
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
            tuple_of_floats(data["step_s"]),
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
    """The freeze invariants of ``check_step`` on one more step after timing, and (frozen mode) the
    freeze guard's view of the whole run: ``guard`` is its report (``StepCheck.to_dict()``) after
    warm-up and timing, compared with the model before them; None where no guard watched."""

    ok: bool
    violations: tuple[str, ...]
    report: dict[str, Any]
    guard: dict[str, Any] | None = None

    @property
    def guard_ok(self) -> bool | None:
        """Whether the frozen tensors stayed unchanged over the whole timed run (None: not watched)."""
        return None if self.guard is None else bool(self.guard["ok"])

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "violations": list(self.violations), "report": self.report, "guard": self.guard}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckSummary:
        guard = data.get("guard")
        return cls(bool(data["ok"]), tuple(data["violations"]), dict(data["report"]),
                   None if guard is None else dict(guard))  # fmt: skip


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
            tuple_of_floats(data["global_window_s"]),
            float(data["global_img_s"]),
            tuple_of_floats(data["per_rank_img_s"]),
            tuple_of_floats(data["single_window_s"]),
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

    @property
    def ratio_ok(self) -> bool | None:
        """The harness verdict: torchscope/baseline >= :data:`RATIO_GOAL`; None without a baseline."""
        return None if self.ratio is None else self.ratio >= RATIO_GOAL

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
            "ratio_goal": RATIO_GOAL,
            "ratio_ok": self.ratio_ok,
            "efficiency": self.efficiency.to_dict(),
            "memory": self.memory.to_dict(),
            "check": None if self.check is None else self.check.to_dict(),
            "distributed": None if self.distributed is None else self.distributed.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModeResult:
        # ratio_goal and ratio_ok are derived: recomputed from the ratio, never read back
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


@dataclass(frozen=True, repr=False)
class BenchResult(Result):
    """The whole benchmark: config, environment, matmul peak and one :class:`ModeResult` per mode."""

    config: BenchConfig
    environment: Environment
    matmul_peak: MatmulPeak | None
    modes: tuple[ModeResult, ...]
    schema: str = SCHEMA

    SCHEMA = SCHEMA

    @property
    def ok(self) -> bool:
        """False when a freeze invariant was violated in any mode."""
        return all(m.check is None or (m.check.ok and m.check.guard_ok is not False) for m in self.modes)

    @property
    def ratio_ok(self) -> bool | None:
        """False when any mode's torchscope/baseline ratio is below :data:`RATIO_GOAL`; None without a baseline."""
        verdicts = [m.ratio_ok for m in self.modes if m.ratio_ok is not None]
        return None if not verdicts else all(verdicts)

    def failures(self, *, strict: bool = False) -> tuple[str, ...]:
        """Why this result fails, one line per reason; empty when it passes.

        A violated freeze invariant always fails; with ``strict``, so does a ratio below the goal
        (on a busy machine a ratio can dip for reasons outside the harness, hence opt-in).
        """
        reasons: list[str] = []
        for m in self.modes:
            if m.check is not None and not m.check.ok:
                reasons.append(f"{m.mode}: {len(m.check.violations)} freeze invariant(s) violated")
            if m.check is not None and m.check.guard_ok is False:
                n = len(m.check.guard["violations"]) if m.check.guard else 0
                reasons.append(f"{m.mode}: the freeze guard saw {n} frozen tensor(s) change during the run")
            if strict and m.ratio_ok is False:
                reasons.append(
                    f"{m.mode}: torchscope / baseline {m.ratio:.3f} is below the goal {RATIO_GOAL}"
                )
        return tuple(reasons)

    def mode(self, name: str) -> ModeResult:
        """The result of mode ``name``."""
        for m in self.modes:
            if m.mode == name:
                return m
        raise TorchscopeError(f"mode {name!r} was not run; this result has {[m.mode for m in self.modes]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "ok": self.ok,
            "ratio_ok": self.ratio_ok,
            "config": self.config.to_dict(),
            "environment": self.environment.to_dict(),
            "matmul_peak": None if self.matmul_peak is None else self.matmul_peak.to_dict(),
            "modes": [m.to_dict() for m in self.modes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """Read a ``to_dict()`` back (for ``--compare``); a foreign file raises a TorchscopeError."""
        check_schema(data, SCHEMA)
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
                f"bench result is incomplete or malformed ({type(exc).__name__}: {exc}); "
                "re-run `torchscope bench --output out.json`"
            ) from None
