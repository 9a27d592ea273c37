"""``torchrun --nproc-per-node 2 -m torchscope bench`` on the CPU: DDP over gloo, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torchscope._bench.stats import median, scaling_efficiency

ZOO_SPEC = f"{Path(__file__).parent / 'zoo.py'}:SmallCNN"


@pytest.mark.slow
@pytest.mark.distributed
def test_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    out = tmp_path / "ddp.json"
    # torchrun is `python -m torch.distributed.run`; --standalone picks a free local port
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "torchscope", "bench", "--model", ZOO_SPEC, "--device", "cpu", "-b", "auto", "--max-batch-size", "4",
        "--image-size", "16", "--window-steps", "2", "--windows", "2", "--warmup", "1",
        "--output", str(out), "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # rank 0 speaks for both processes: one report, not two
    assert proc.stdout.count("scaling efficiency") == 1

    data = json.loads(out.read_text())
    assert data["environment"]["world_size"] == 2 and data["environment"]["backend"] == "gloo"
    for m in data["modes"]:
        # each rank searched on its own, then all took the smallest size that fits everywhere
        assert m["batch_size"] == 4
        assert m["batch_search"] == [{"batch_size": b, "fits": True} for b in (1, 2, 4)]
        d = m["distributed"]
        assert d["world_size"] == 2 and d["backend"] == "gloo"
        assert len(d["per_rank_img_s"]) == 2 and all(r > 0 for r in d["per_rank_img_s"])
        assert len(d["global_window_s"]) == 2 and len(d["single_window_s"]) == 2
        # a global window lasts as long as the slowest rank's, and counts both ranks' images
        assert all(g >= h for g, h in zip(d["global_window_s"], m["harness"]["window_s"], strict=True))
        assert d["global_img_s"] == pytest.approx(median([2 * 4 * 2 / t for t in d["global_window_s"]]))
        assert d["single_img_s"] == pytest.approx(median([4 * 2 / t for t in d["single_window_s"]]))
        assert d["scaling_efficiency"] == pytest.approx(
            scaling_efficiency(d["global_img_s"], 2, d["single_img_s"])
        )
        # the freeze check ran through DDP on every rank, and rank 0's verdict is reported
        assert m["check"]["ok"], m["check"]["violations"]
