"""``bench()`` and ``torchscope bench`` on tiny configurations: 2 steps a window, 16-pixel images.

Figures are never asserted against a speed (that is the benchmarks' job); the tests check what a
user checks: the raw windows and the summary agree, FLOPs are those of the real step, the freeze
invariants hold (and a broken freeze is reported), the batch-size search finds the limit, and the
JSON round-trips and compares.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner
from zoo import SmallCNN

from torchscope._bench.batchsize import find_batch_size, is_oom_error
from torchscope._bench.device import measure_matmul_peak
from torchscope._bench.efficiency import efficiency
from torchscope._bench.run import bench
from torchscope._bench.schema import SCHEMA, BenchResult, MatmulPeak, Warmup
from torchscope._bench.stats import summarize_windows
from torchscope._state import capture_state
from torchscope.errors import TorchscopeError
from torchscope.render.bench import render_bench, render_compare

ZOO_SPEC = f"{Path(__file__).parent / 'zoo.py'}:SmallCNN"
TINY: dict[str, Any] = dict(device="cpu", batch_size=4, image_size=16, steps=2, windows=2, warmup=1)


class _Counter(nn.Module):
    """Counts its calls in a buffer, whatever the mode: a frozen backbone whose state still drifts."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


class DriftingCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), _Counter(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


@pytest.fixture(scope="module")
def both() -> tuple[nn.Module, Any, BenchResult]:
    torch.manual_seed(0)
    model = SmallCNN()
    before = capture_state(model)
    result = bench(model, mode="both", num_classes=10, **TINY)
    return model, before, result


# ---------------------------------------------------------------------------------------------
# The collector


def test_both_modes_side_by_side_with_baseline(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    d = result.to_dict()
    assert d["schema"] == SCHEMA
    assert [m["mode"] for m in d["modes"]] == ["frozen", "full"]
    for m in d["modes"]:
        assert m["batch_size"] == 4 and m["head"] == "fc"
        for loop in ("harness", "baseline"):
            assert len(m[loop]["window_s"]) == 2 and m[loop]["steps_per_window"] == 2
            # the summary is computed from the raw windows that are saved with it
            assert (
                m[loop]["summary"]
                == summarize_windows(m[loop]["window_s"], steps=2, images_per_step=4).to_dict()
            )
        # window i of the harness and of the baseline ran back to back: the ratio is the median pair
        pairs = sorted(
            b / h for h, b in zip(m["harness"]["window_s"], m["baseline"]["window_s"], strict=True)
        )
        assert m["ratio"] == pytest.approx((pairs[0] + pairs[1]) / 2)
        assert len(m["warmup"]["step_s"]) >= 2 and m["warmup"]["compile_s"] is None
        assert m["memory"]["peak_rss_bytes"] > 0 and m["memory"]["peak_allocated_bytes"] is None
        assert m["distributed"] is None
    frozen, full = d["modes"]
    # SmallCNN(10 classes): the head is Linear(8, 10)
    assert frozen["trainable_params"] == 90 and full["trainable_params"] == full["total_params"] == 930


def test_freeze_invariants_hold_and_are_reported(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    assert result.ok
    frozen = result.mode("frozen").check
    assert frozen is not None and frozen.ok and frozen.violations == ()
    # the frozen mode's backbone (params and BatchNorm stats) was checked, the head updated
    assert frozen.report["frozen_params"] == 8 and frozen.report["frozen_buffers"] == 6
    assert frozen.report["trainable_params"] == 2
    full = result.mode("full").check
    assert full is not None and full.ok and full.report["frozen_params"] == 0


def test_users_model_is_never_trained(both: tuple[nn.Module, Any, BenchResult]) -> None:
    model, before, _ = both
    assert before.differences(capture_state(model)) == []


def test_callers_rng_is_left_alone() -> None:
    model = SmallCNN()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    bench(model, mode="frozen", baseline=False, check=False, measure_peak=False, **TINY)
    assert torch.equal(torch.rand(3), expected)


def test_flops_are_those_of_the_real_step(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    model = SmallCNN(num_classes=10)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(4, 3, 16, 16))
    forward = counter.get_total_flops()
    frozen = result.mode("frozen").efficiency
    full = result.mode("full").efficiency
    # frozen: no backward through the backbone, only the head's weight grad (2 * B * in * out)
    assert frozen.flops_per_step == forward + 2 * 4 * 8 * 10
    assert full.flops_per_step > 2 * forward
    for e in (frozen, full):
        assert e.compute_dtype == "fp32" and e.basis == "measured" and e.datasheet_key is None
        step_s = result.mode("frozen" if e is frozen else "full").harness.stats.step_ms_p50 / 1000
        assert e.tflops == pytest.approx(e.flops_per_step / step_s / 1e12)
        assert e.measured_peak_tflops == result.matmul_peak.tflops  # type: ignore[union-attr]
        assert e.mfu == pytest.approx(e.tflops / e.measured_peak_tflops)


def test_mfu_basis_on_gpus_is_the_datasheet() -> None:
    # ResNet-50 full step at batch 256 (~3 x 4.1 GFLOP per image) in 0.1 s on an H100 SXM with bf16
    flops = int(3 * 4.1e9 * 256)
    e = efficiency(flops, 0.1, "bf16", "NVIDIA H100 80GB HBM3", 600.0)
    assert e.basis == "datasheet" and e.datasheet_key == "H100 SXM" and e.datasheet_peak_tflops == 989.5
    assert e.mfu == pytest.approx(flops / 0.1 / 1e12 / 989.5) and e.mfu == e.mfu_datasheet
    assert e.mfu_measured == pytest.approx(flops / 0.1 / 1e12 / 600.0)
    # a GPU that is not in the table falls back to the matmul measured in the run
    e = efficiency(flops, 0.1, "bf16", "NVIDIA GeForce RTX 4090", 150.0)
    assert e.basis == "measured" and e.datasheet_key is None and e.mfu == e.mfu_measured
    e = efficiency(flops, 0.1, "fp32", None, None)
    assert e.basis == "none" and e.mfu is None


def test_environment_and_config_block(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    env = result.environment.to_dict()
    assert env["device"] == "cpu" and env["torch"] == torch.__version__
    assert env["threads"] == torch.get_num_threads()
    assert env["compute_dtype"] == "fp32" and env["memory_format"] == "contiguous" and env["compile"] == "off"
    assert env["world_size"] == 1 and env["backend"] is None
    cfg = result.config.to_dict()
    assert cfg["model"] == "SmallCNN" and cfg["modes"] == ["frozen", "full"] and cfg["optimizer"] == "sgd"
    assert cfg["lr"] == 0.01 and cfg["num_classes"] == 10 and cfg["image_size"] == 16


def test_json_round_trip(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    text = json.dumps(result.to_dict())
    assert BenchResult.from_dict(json.loads(text)) == result


def test_torchvision_resnet18_by_name() -> None:
    result = bench(
        "resnet18", mode="frozen", device="cpu", batch_size=2, image_size=32, steps=1, windows=1, warmup=1,
        baseline=False, measure_peak=False,
    )  # fmt: skip
    m = result.mode("frozen")
    assert result.config.model == "resnet18" and m.head == "fc"
    assert m.trainable_params == 512 * 10 + 10 and m.total_params == 11_181_642
    # every BatchNorm of the frozen backbone stayed in eval: its 3 buffers x 20 layers are unchanged
    assert m.check is not None and m.check.ok and m.check.report["frozen_buffers"] == 60


def test_from_dict_rejects_foreign_files() -> None:
    with pytest.raises(TorchscopeError, match=r"not a torchscope\.bench result"):
        BenchResult.from_dict({"schema": "other"})
    with pytest.raises(TorchscopeError, match="incomplete or malformed"):
        BenchResult.from_dict({"schema": SCHEMA, "config": {}})


def test_progress_is_reported_at_window_edges_only() -> None:
    calls: list[tuple[str, int, int]] = []
    bench(
        SmallCNN(),
        mode="frozen",
        check=False,
        measure_peak=False,
        progress=lambda *a: calls.append(a),
        **TINY,
    )
    timing = [c for c in calls if c[0] == "frozen: timing"]
    # 2 windows of the harness + 2 of the baseline, one call at the end of each window
    assert timing == [("frozen: timing", i, 4) for i in (1, 2, 3, 4)]
    assert any(c[0] == "frozen: warm-up" for c in calls)


def test_bf16_autocast_channels_last_adamw() -> None:
    result = bench(
        SmallCNN(), mode="full", amp="bf16", channels_last=True, optimizer="adamw", baseline=False, **TINY
    )
    env = result.environment
    assert env.compute_dtype == "bf16" and env.memory_format == "channels_last"
    assert result.matmul_peak is not None and result.matmul_peak.dtype == "bf16"
    m = result.mode("full")
    assert m.baseline is None and m.ratio is None and result.config.lr == 1e-3
    assert m.check is not None and m.check.ok


def test_compile_flag_is_plumbed(monkeypatch: pytest.MonkeyPatch) -> None:
    # compiling for real takes minutes on a loaded CPU; record the call and run eagerly
    seen: list[str] = []

    def fake_compile(model: nn.Module, mode: str = "default") -> nn.Module:
        seen.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    result = bench(
        SmallCNN(),
        mode="frozen",
        compile=True,
        compile_mode="max-autotune",
        check=False,
        measure_peak=False,
        **TINY,
    )
    assert seen == ["max-autotune"]
    assert result.environment.compile == "max-autotune"
    assert result.mode("frozen").warmup.compile_s is not None


def test_broken_freeze_is_reported() -> None:
    result = bench(DriftingCNN(), mode="frozen", baseline=False, measure_peak=False, **TINY)
    assert not result.ok
    check = result.mode("frozen").check
    assert check is not None and not check.ok
    assert any(v.startswith("frozen_buffer_changed backbone.1.calls") for v in check.violations)


def test_image_folder_data(tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("cat", "dog", "eel"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (20, 20), (i * 40, 90, 200)).save(tmp_path / cls / f"{i}.png")
    result = bench(SmallCNN(), mode="full", data=tmp_path, workers=0, check=False, measure_peak=False, **TINY)
    assert result.config.num_classes == 3 and result.config.data == str(tmp_path)
    assert "ImageFolder" not in result.config.to_dict()  # the path itself is recorded
    assert len(result.mode("full").harness.window_s) == 2
    with pytest.raises(TorchscopeError, match="fewer than one batch of 16"):
        bench(SmallCNN(), mode="full", data=tmp_path, **{**TINY, "batch_size": 16})
    with pytest.raises(TorchscopeError, match="is not a directory"):
        bench(SmallCNN(), data=tmp_path / "nope", **TINY)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "half"}, "mode 'half' is not one of frozen, full, both"),
        ({"amp": "fp8"}, "amp 'fp8' is not one of off, bf16, fp16"),
        ({"amp": "fp16"}, "fp16 needs a GPU"),
        ({"optimizer": "lion"}, "optimizer 'lion' is not one of sgd, adamw"),
        ({"batch_size": "many"}, "batch size 'many' must be a positive integer or 'auto'"),
        ({"batch_size": 0}, "batch_size=0 must be an integer >= 1"),
        ({"steps": 0}, "steps=0 must be an integer >= 1"),
        ({"device": "tpu"}, "device 'tpu' is not"),
        ({"compile_mode": "fast"}, "compile mode 'fast' is not one of"),
        ({"lr": -1.0}, "lr=-1.0 must be a positive number"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(TorchscopeError, match=match):
        bench(SmallCNN(), **{**TINY, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_names_the_fix() -> None:
    with pytest.raises(TorchscopeError, match="not available on this machine; use --device cpu"):
        bench(SmallCNN(), **{**TINY, "device": "cuda"})


# ---------------------------------------------------------------------------------------------
# Batch-size search


def _limit(threshold: int, seen: list[int]) -> Any:
    def probe(b: int) -> None:
        seen.append(b)
        if b > threshold:
            raise torch.OutOfMemoryError(f"fake: {b} > {threshold}")

    return probe


def test_find_batch_size_doubles_then_bisects() -> None:
    seen: list[int] = []
    best, trials = find_batch_size(_limit(100, seen), start=8, limit=1024)
    assert best == 96
    assert trials == (
        (8, True),
        (16, True),
        (32, True),
        (64, True),
        (128, False),
        (96, True),
        (112, False),
        (104, False),
    )
    assert seen == [b for b, _ in trials]


def test_find_batch_size_halves_when_start_does_not_fit_and_stops_at_limit() -> None:
    assert find_batch_size(_limit(5, []), start=8)[0] == 5
    best, trials = find_batch_size(_limit(10**6, []), start=8, limit=40)
    assert best == 40 and trials[-1] == (40, True)
    with pytest.raises(TorchscopeError, match="batch size 1 does not fit"):
        find_batch_size(_limit(0, []), start=4)


def test_find_batch_size_lets_other_errors_through() -> None:
    def trial(b: int) -> None:
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        find_batch_size(trial)


def test_is_oom_error() -> None:
    assert is_oom_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom_error(
        RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory")
    )
    assert not is_oom_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_oom_error(KeyError("x"))


def test_auto_batch_size_searches_each_mode_with_real_steps() -> None:
    seen: list[int] = []
    result = bench(
        SmallCNN(),
        mode="both",
        batch_size="auto",
        max_batch_size=16,
        oom_probe=_limit(6, seen),
        check=False,
        measure_peak=False,
        **{k: v for k, v in TINY.items() if k != "batch_size"},
    )
    search = ((1, True), (2, True), (4, True), (8, False), (6, True), (7, False))
    for mode in ("frozen", "full"):
        m = result.mode(mode)
        assert m.batch_size == 6 and m.batch_search == search
        assert m.harness.images_per_step == 6
    assert seen == [b for b, _ in search] * 2  # searched separately, once per mode
    assert result.config.batch_size == "auto" and result.config.max_batch_size == 16


def test_matmul_peak_is_measured() -> None:
    peak = measure_matmul_peak("cpu", "fp32", n=128, reps=2)
    assert peak.n == 128 and peak.reps == 2 and peak.dtype == "fp32" and peak.tflops > 0


# ---------------------------------------------------------------------------------------------
# Rendering


def _fixed(result: BenchResult, img_s: float, baseline_img_s: float) -> BenchResult:
    """``result`` with every measured figure replaced by a fixed one, so the layout is exact.

    Windows of 2 steps x 4 images give exactly ``img_s`` (harness) and ``baseline_img_s``.
    """
    modes = []
    for m in result.modes:
        h = (8 / img_s, 8 / img_s)
        b = (8 / baseline_img_s, 8 / baseline_img_s)
        harness = dataclasses.replace(
            m.harness, window_s=h, stats=summarize_windows(h, steps=2, images_per_step=4)
        )
        base = dataclasses.replace(
            m.harness, window_s=b, stats=summarize_windows(b, steps=2, images_per_step=4)
        )
        eff = dataclasses.replace(m.efficiency, tflops=0.004, measured_peak_tflops=0.05, mfu=0.08)
        modes.append(
            dataclasses.replace(
                m,
                harness=harness,
                baseline=base,
                ratio=img_s / baseline_img_s,
                efficiency=eff,
                warmup=Warmup((0.5, 0.1), 0.5, None),
                memory=dataclasses.replace(m.memory, peak_rss_bytes=700 * 2**20),
            )
        )
    env = dataclasses.replace(result.environment, device_name="test CPU")
    peak = MatmulPeak("fp32", 1024, 5, 0.05)
    return dataclasses.replace(result, modes=tuple(modes), environment=env, matmul_peak=peak)


def _text(renderable: Any) -> str:
    console = Console(width=100, color_system=None, record=True, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def test_render_report_rows(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    text = _text(render_bench(_fixed(result, 99.0, 100.0)))
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[0] == "torchscope bench · SmallCNN · test CPU · fp32 · contiguous · eager"
    for expected in (
        "│ trainable params      │ 90 of 930                          │ 930 of 930                          │",
        "│ img/s (median)        │ 99.0  (spread 0.0%)                │ 99.0  (spread 0.0%)                 │",
        "│ baseline img/s        │ 100.0                              │ 100.0                               │",
        "│ torchscope / baseline │ 0.990 ✓                            │ 0.990 ✓                             │",
        "│ step ms p50 / p90     │ 40.4 / 40.4                        │ 40.4 / 40.4                         │",
        "│ achieved              │ 4 GFLOP/s                          │ 4 GFLOP/s                           │",
        "│ peak memory           │ 700.0 MiB RSS                      │ 700.0 MiB RSS                       │",
        "│ freeze check          │ ✓ 8 frozen tensors unchanged, 2    │ ✓ all 10 tensors updated            │",
        "memory format  contiguous",
        "matmul peak    50 GFLOP/s (fp32, 1024x1024, best of 5)",
    ):
        assert expected in lines
    footer = " ".join(line.strip() for line in lines)
    assert "torchscope / baseline = median over back-to-back window pairs" in footer
    assert "MFU against the matmul peak measured in this run" in footer


def test_render_names_the_datasheet_basis(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    fixed = _fixed(result, 99.0, 100.0)
    eff = efficiency(int(3 * 4.1e9 * 256), 0.1, "bf16", "NVIDIA H100 80GB HBM3", 600.0)
    gpu = dataclasses.replace(fixed, modes=(dataclasses.replace(fixed.mode("full"), efficiency=eff),))
    text = _text(render_bench(gpu))
    assert "│ MFU                   │ 3.2% of H100 SXM bf16 989.5 TFLOP/s (datasheet) │" in text.splitlines()
    assert "MFU against the datasheet dense peak" in " ".join(line.strip() for line in text.splitlines())


def test_render_notes_noisy_windows(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    fixed = _fixed(result, 99.0, 100.0)
    assert "note: windows differ" not in _text(render_bench(fixed))
    m = fixed.mode("frozen")
    windows = (8 / 80.0, 8 / 100.0, 8 / 120.0)  # 80, 100, 120 img/s: spread 40%
    noisy_timing = dataclasses.replace(
        m.harness, window_s=windows, stats=summarize_windows(windows, steps=2, images_per_step=4)
    )
    noisy = dataclasses.replace(fixed, modes=(dataclasses.replace(m, harness=noisy_timing),))
    text = " ".join(line.strip() for line in _text(render_bench(noisy)).splitlines())
    assert "note: windows differ by up to 40% (spread)" in text


def test_render_ratio_below_goal_is_flagged(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    lines = _text(render_bench(_fixed(result, 90.0, 100.0))).splitlines()
    assert any(line.startswith("│ torchscope / baseline │ 0.900 ✗ ") for line in lines)


def test_render_shows_violations(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    m = _fixed(result, 99.0, 100.0).mode("frozen")
    bad = dataclasses.replace(
        m.check, ok=False, violations=("frozen_buffer_changed bn1.running_mean: in train mode",), guard=None
    )  # type: ignore[arg-type]
    broken = dataclasses.replace(result, modes=(dataclasses.replace(m, check=bad),))
    lines = [line.rstrip() for line in _text(render_bench(broken)).splitlines()]
    assert "│ freeze check          │ ✗ 1 violation(s)                     │" in lines
    assert "freeze invariants violated in frozen mode:" in lines
    assert "  ✗ frozen_buffer_changed bn1.running_mean: in train mode" in lines


def test_render_compare_ratios(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    a = _fixed(result, 50.0, 50.0)
    b = _fixed(result, 100.0, 50.0)
    b = dataclasses.replace(b, config=dataclasses.replace(b.config, steps=20))
    lines = [line.rstrip() for line in _text(render_compare(a, b, ("a.json", "b.json"))).splitlines()]
    for expected in (
        "frozen · SmallCNN vs SmallCNN",
        "full · SmallCNN vs SmallCNN",
        "│ img/s (median)        │      50.0 │     100.0 │         2.000 │",
        "│ baseline img/s        │      50.0 │      50.0 │         1.000 │",
        "│ torchscope / baseline │     1.000 │     2.000 │         2.000 │",
        "│ step ms p50           │      80.0 │      40.0 │         0.500 │",
        "│ freeze check          │      ✓ ok │      ✓ ok │               │",
        "│ steps │ 2      │ 20     │",
    ):
        assert expected in lines, expected


# ---------------------------------------------------------------------------------------------
# CLI

CLI_TINY = [
    "--device",
    "cpu",
    "-b",
    "4",
    "--image-size",
    "16",
    "--window-steps",
    "2",
    "--windows",
    "2",
    "--warmup",
    "1",
]


def _cli(*args: str) -> Any:
    from torchscope.cli import app

    return CliRunner().invoke(app, ["bench", *args])


def test_cli_json_file_and_compare(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    html = tmp_path / "report.html"
    res = _cli(
        "--model", ZOO_SPEC, "--finetune", "frozen", *CLI_TINY, "--json", str(out), "--console-html", str(html), "--no-progress"
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "torchscope / baseline" in html.read_text()
    assert "torchscope / baseline" in res.stdout and "freeze check" in res.stdout
    data = json.loads(out.read_text())
    assert data["schema"] == SCHEMA and len(data["modes"][0]["harness"]["window_s"]) == 2
    faster = json.loads(out.read_text())
    for loop in ("harness", "baseline"):
        faster["modes"][0][loop]["summary"]["img_s_median"] *= 2
    (tmp_path / "b.json").write_text(json.dumps(faster))
    res = _cli("--compare", str(out), str(tmp_path / "b.json"))
    assert res.exit_code == 0, res.output
    assert "a.json" in res.stdout and "2.000" in res.stdout


def test_cli_json_to_stdout_is_clean() -> None:
    res = _cli("--model", ZOO_SPEC, "--finetune", "full", *CLI_TINY, "--json", "-", "--no-baseline", "--no-check")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["modes"][0]["mode"] == "full"


def test_cli_broken_freeze_exits_1(tmp_path: Path) -> None:
    src = tmp_path / "drift.py"
    src.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class Counter(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("calls", torch.zeros(()))

                def forward(self, x):
                    self.calls += 1
                    return x

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), Counter(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
                    self.fc = nn.Linear(4, 3)

                def forward(self, x):
                    return self.fc(self.backbone(x))
            """
        )
    )
    res = _cli("--model", f"{src}:Net", "--finetune", "frozen", *CLI_TINY, "--no-baseline", "--no-progress")
    assert res.exit_code == 1, res.output
    assert "frozen_buffer_changed backbone.1.calls" in res.stdout


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-b", "lots"], "--batch-size 'lots' must be a positive integer or 'auto'"),
        (["--finetune", "half"], "--finetune 'half' is not one of frozen, full, both"),
        (["--compare", "missing-a.json", "missing-b.json"], "cannot read 'missing-a.json'"),
    ],
)
def test_cli_bad_input_exits_2(args: list[str], match: str) -> None:
    res = _cli("--model", ZOO_SPEC, *args)
    assert res.exit_code == 2
    assert match in res.output


def test_cli_compare_rejects_other_json(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    res = _cli("--compare", str(other), str(other))
    assert res.exit_code == 2 and "not a torchscope.bench result" in res.output


@pytest.mark.slow
def test_saved_results_render_and_compare_without_torch(
    both: tuple[nn.Module, Any, BenchResult], tmp_path: Path
) -> None:
    # a fresh interpreter: in this one torch is long imported
    _, _, result = both
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(result.to_dict()))
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from rich.console import Console
        from typer.testing import CliRunner
        from torchscope._bench.schema import BenchResult
        from torchscope.cli import app
        from torchscope.render.bench import render_bench

        res = CliRunner().invoke(app, ["bench", "--compare", {str(saved)!r}, {str(saved)!r}])
        assert res.exit_code == 0, res.output
        assert "same setup in both files" in res.stdout, res.stdout
        result = BenchResult.from_dict(json.loads(open({str(saved)!r}).read()))
        Console(file=open(os.devnull, "w")).print(render_bench(result))
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------------------------------------
# The verdicts: in the result, the exit code from the result


def test_ratio_verdict_is_carried_by_the_result(both: tuple[nn.Module, Any, BenchResult]) -> None:
    _, _, result = both
    slow = _fixed(result, 90.0, 100.0)
    d = slow.to_dict()
    assert [(m["ratio_ok"], m["ratio_goal"]) for m in d["modes"]] == [(False, 0.98), (False, 0.98)]
    assert d["ratio_ok"] is False and d["ok"] is True
    # a ratio below the goal fails only under strict; a broken freeze always does
    assert slow.failures() == ()
    assert slow.failures(strict=True) == (
        "frozen: torchscope / baseline 0.900 is below the goal 0.98",
        "full: torchscope / baseline 0.900 is below the goal 0.98",
    )
    fine = _fixed(result, 99.0, 100.0)
    assert fine.ratio_ok is True and fine.failures(strict=True) == ()
    no_baseline = dataclasses.replace(
        fine, modes=tuple(dataclasses.replace(m, baseline=None, ratio=None) for m in fine.modes)
    )
    assert no_baseline.ratio_ok is None and no_baseline.to_dict()["modes"][0]["ratio_ok"] is None
    assert no_baseline.failures(strict=True) == ()
    # the verdict is derived from the ratio: reading a file back gives the same verdict
    assert BenchResult.from_dict(json.loads(json.dumps(d))) == slow


def test_broken_freeze_fails_with_or_without_strict() -> None:
    result = bench(DriftingCNN(), mode="frozen", baseline=False, measure_peak=False, **TINY)
    assert result.failures() == result.failures(strict=True)
    # the extra checked step and the guard over the whole run both saw the drift
    assert len(result.failures()) == 2 and all(f.startswith("frozen: ") for f in result.failures())
    assert result.to_dict()["ok"] is False


def test_cli_failed_ratio_is_in_json_and_strict_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # a harness 2x slower than its baseline, whatever this machine's load
    monkeypatch.setattr("torchscope._bench.mode.paired_ratio", lambda harness, baseline: 0.5)
    args = ("--model", ZOO_SPEC, "--finetune", "frozen", *CLI_TINY, "--no-check", "--no-progress", "--json")
    res = _cli(*args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (
        data["ratio_ok"] is False
        and data["modes"][0]["ratio"] == 0.5
        and data["modes"][0]["ratio_ok"] is False
    )
    res = _cli(*args, "--require-speed")
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout)["ratio_ok"] is False
    assert res.stderr.strip().splitlines() == [
        "bench: frozen: torchscope / baseline 0.500 is below the goal 0.98"
    ]
    res = _cli(*args[:-1], "--require-speed")  # the table shows the same verdict the exit code follows
    assert res.exit_code == 1 and "0.500 ✗" in res.stdout


# ---------------------------------------------------------------------------------------------
# --json (a flag, as everywhere) and --output FILE; the output path is checked before any work

QUICK = ["--model", ZOO_SPEC, "--finetune", "frozen", *CLI_TINY, "--no-baseline", "--no-check", "--no-progress"]


def test_cli_json_flag_and_output_file(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    res = _cli(*QUICK, "--json", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == json.loads(out.read_text())
    assert res.stderr == ""
    res = _cli(*QUICK, "--output", str(out))  # an earlier result is ours to overwrite
    assert res.exit_code == 0, res.output
    assert "freeze check" in res.stdout and json.loads(out.read_text())["schema"] == SCHEMA
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary left behind


def test_cli_old_json_path_still_writes_the_file_with_a_notice(tmp_path: Path) -> None:
    out = tmp_path / "old.json"
    res = _cli(*QUICK, "--json", str(out))
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["modes"][0]["mode"] == "frozen"
    assert "freeze check" in res.stdout  # as before: the report on stdout, the JSON in the file
    assert res.stderr.strip().splitlines() == [
        f"warning: `--json PATH` is deprecated and goes in the next release; write `--output {out}` "
        "(and `--json` alone for JSON on stdout)"
    ]
    res = _cli(*QUICK, "--json", str(out), "-o", str(tmp_path / "b.json"))
    assert res.exit_code == 2 and "keep --output only" in res.stderr
    res = _cli(*QUICK, "stray.json")
    assert res.exit_code == 2 and "unexpected argument 'stray.json'" in res.stderr


def _no_run(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    monkeypatch.setattr("torchscope._bench.run.run_bench", lambda *a, **k: calls.append(a))
    return calls


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("missing/run.json", "folder '{tmp}/missing' does not exist"),
        (".", "is a folder"),
        ("notes.json", "exists and was not written by torchscope; pick a new file, or add --force"),
        ("zoo.py", "is an input of this command"),
        ("report.html", "is also --console-html"),
    ],
)
def test_cli_unusable_output_exits_2_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, match: str
) -> None:
    calls = _no_run(monkeypatch)
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    model = tmp_path / "zoo.py"
    model.write_text((Path(__file__).parent / "zoo.py").read_text())
    args = ["--model", f"{model}:SmallCNN", *QUICK[2:], "--console-html", str(tmp_path / "report.html")]
    res = _cli(*args, "-o", str(tmp_path / name))
    assert res.exit_code == 2, res.output
    assert match.format(tmp=tmp_path) in res.stderr and res.stdout == ""
    assert calls == []  # nothing was loaded or timed
    assert (tmp_path / "notes.json").read_text() == '{"mine": 1}'
    assert not (tmp_path / "report.html").exists()


def test_cli_force_overwrites_a_foreign_file_but_never_an_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    res = _cli(*QUICK, "-o", str(notes), "--force")
    assert res.exit_code == 0, res.output
    assert json.loads(notes.read_text())["schema"] == SCHEMA
    calls = _no_run(monkeypatch)
    res = _cli(*QUICK, "-o", str(Path(__file__).parent / "zoo.py"), "--force")
    assert res.exit_code == 2 and "is an input of this command" in res.stderr and calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_read_only_folder_exits_2_before_anything_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the output path is checked before run_bench loads or times the model (how long the refusal
    # takes: benchmarks/cache_guards.py)
    calls = _no_run(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        res = _cli(*QUICK, "--output", str(locked / "run.json"))
    finally:
        locked.chmod(0o700)
    assert res.exit_code == 2 and "is not writable; pick another path" in res.stderr
    assert calls == []
