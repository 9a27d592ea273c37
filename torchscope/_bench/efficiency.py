"""Achieved FLOP rate and MFU of a step, against the datasheet peak or the matmul measured in the run.

Pure arithmetic on plain numbers (no torch), so it is tested exactly and runs wherever results are read.
"""

from __future__ import annotations

from torchscope._bench.schema import Efficiency
from torchscope._bench.stats import achieved_tflops, datasheet_peak, mfu


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
    achieved = achieved_tflops(flops_per_step, step_s)
    sheet = datasheet_peak(device_name, compute_dtype) if device_name else None
    mfu_sheet = mfu(achieved, sheet[1]) if sheet else None
    mfu_meas = mfu(achieved, measured_peak) if measured_peak else None
    basis = "datasheet" if sheet else "measured" if measured_peak else "none"
    return Efficiency(
        flops_per_step=flops_per_step,
        tflops=achieved,
        compute_dtype=compute_dtype,
        datasheet_key=sheet[0] if sheet else None,
        datasheet_peak_tflops=sheet[1] if sheet else None,
        mfu_datasheet=mfu_sheet,
        measured_peak_tflops=measured_peak,
        mfu_measured=mfu_meas,
        basis=basis,
        mfu=mfu_sheet if sheet else mfu_meas,
    )
