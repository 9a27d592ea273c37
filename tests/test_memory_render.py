"""render/memory: the headline, the breakdown bars and the --fit line, from plain data (exact strings)."""

from __future__ import annotations

from rendering import text

from torchscope._memory.cards import MARGIN
from torchscope._memory.schema import KINDS, FitResult, MemoryReport, ModuleMemory
from torchscope.render.memory import bar, fit_line, headline, render_memory

MIB = 2**20


def _report(fit: FitResult | None = None) -> MemoryReport:
    sizes = dict(zip(KINDS, (40 * MIB, 0, 40 * MIB, 80 * MIB, 200 * MIB, 40 * MIB), strict=True))
    return MemoryReport(
        model="net", inputs=((8, 3, 64, 64),), step="2 training steps", device="cuda", block=512,
        optimizer="adamw", amp="off", dtype="fp32", channels_last=False, grad_checkpointing=False,
        mode="train", peak=400 * MIB, phase="backward", step_of_peak=2, op="threshold_backward",
        breakdown=tuple(sizes.items()),
        modules=(ModuleMemory("features", parameters=40 * MIB, activations=200 * MIB),),
        weights=40 * MIB, trainable=10, total_params=10, fit=fit,
    )  # fmt: skip


def test_headline_and_breakdown() -> None:
    assert (
        headline(_report()).plain == "Predicted peak: 400.0 MiB in backward of step 2 (at threshold_backward)"
    )
    out = text(render_memory(_report()))
    assert "activations     │ 200.0 MiB │  50.0% │ " + "█" * 16 in out
    assert "buffers" not in out  # an empty kind of buffers is left out
    assert "total           │ 400.0 MiB │ 100.0% │" in out
    assert bar(0.25, 8) == "██" and bar(2.0, 4) == "████"


def test_fit_lines() -> None:
    fits = FitResult("t4", 16 * 2**30, MARGIN, 14 * 2**30, 54, 13 * 2**30, 14 * 2**30 + 1, 40 * MIB, 3)
    assert fit_line(fits).plain == (
        "fits t4: largest batch size 54, peak 13.0 GiB of 14.0 GiB usable; batch 55 would need 14.0 GiB"
    )
    heavy = FitResult("1GiB", 2**30, MARGIN, 0, 0, 0, None, 40 * MIB, 0, "the weights alone do not fit")
    assert fit_line(heavy).plain == (
        "does not fit 1GiB: the weights alone need 40.0 MiB, more than the 0 B usable (after 1.0 GiB for "
        "the CUDA context, then 10% for allocator fragmentation)"
    )
    out = text(render_memory(_report(fits)))
    assert "margin kept free: 1.0 GiB for the CUDA context, then 10% for allocator fragmentation" in out
