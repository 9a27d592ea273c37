"""``diff`` says what happened to NaN and inf values instead of a meaningless ``|Δ|`` (issue 19).

NaN to 5 was shown as ``max |Δ| inf``, inf to -inf as ``1.8e+308``. Now the row, ``--json``'s
``nonfinite``/``cause`` fields and the text say it in words; ``max |Δ|`` covers the values finite on
both sides; ``--expect-frozen`` passes a NaN that stayed the same NaN and fails every one of these.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from rendering import text

from torchscope import diff_checkpoints
from torchscope._diff import NONFINITE
from torchscope.render.diff import render_diff

NAN, INF = math.nan, math.inf
CASES = {
    "nan_to_finite": ([NAN, 1.0], [5.0, 1.0], "1 was NaN, now finite"),
    "nan_to_inf": ([NAN, 1.0], [INF, 1.0], "1 was NaN, now inf"),
    "became_nan": ([1.0, 2.0], [NAN, 2.0], "1 became NaN"),
    "inf_appeared": ([1.0, 2.0], [-INF, 2.0], "1 inf appeared (was finite)"),
    "inf_gone": ([INF, 2.0], [3.0, 2.0], "1 was inf, now finite"),
    "inf_sign_changed": ([INF, 2.0], [-INF, 2.0], "1 sign of inf changed"),
    "bits_only": ([0.0, 2.0], [-0.0, 2.0], "1 same value, other bits (0.0 and -0.0, or another NaN)"),
}


def _save(tmp_path: Path, values: dict[str, list[float]], name: str) -> Path:
    path = tmp_path / name
    torch.save({k: torch.tensor(v) for k, v in values.items()}, path)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a = {kind: before for kind, (before, _, _) in CASES.items()}
    b = {kind: after for kind, (_, after, _) in CASES.items()}
    a["same_nan"] = b["same_nan"] = [NAN, 1.0]
    a["moved"], b["moved"] = [NAN, 1.0, 2.0], [7.0, 1.0, 2.5]  # a NaN gone, and a finite change
    return _save(tmp_path, a, "a.pt"), _save(tmp_path, b, "b.pt")


def test_every_kind_is_named_in_json_and_the_finite_change_is_kept(cli, pair: tuple[Path, Path]) -> None:
    result = cli("diff", *pair, "--json")
    assert result.exit_code == 0, result.output
    rows = {t["name"]: t for t in json.loads(result.stdout)["tensors"]}
    for kind, (_, _, cause) in CASES.items():
        row = rows[kind]
        assert row["status"] == "changed" and row["nonfinite"] == {kind: 1} and row["cause"] == cause
        assert row["max_abs"] == 0.0  # over the value finite on both sides, which did not move
    assert rows["same_nan"]["status"] == "unchanged" and rows["same_nan"]["nonfinite"] == {}
    moved = rows["moved"]
    assert moved["nonfinite"] == {"nan_to_finite": 1} and moved["max_abs"] == 0.5
    assert moved["rel_change"] == pytest.approx(0.5 / math.sqrt(1 + 4))
    assert set(NONFINITE) == set(CASES)


def test_the_text_says_what_happened_and_no_huge_numbers(cli, pair: tuple[Path, Path]) -> None:
    result = cli("diff", *pair, "--unchanged", "--no-color")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for kind, (_, _, cause) in CASES.items():
        (line,) = [ln for ln in out.splitlines() if f" {kind}  changed" in ln]
        assert cause in line and "max |Δ|" not in line
    assert "inf  rel" not in out and "1.8e+308" not in out and "max |Δ| 0.5  rel 0.224" in out
    assert "7 tensor(s) changed in NaN or inf values" in " ".join(out.split())  # bits_only is not one


def test_expect_frozen_passes_the_same_nan_and_fails_every_change(cli, pair: tuple[Path, Path]) -> None:
    result = cli("diff", *pair, "--expect-frozen", "same_nan", "--json")
    assert result.exit_code == 0, result.output
    for kind in CASES:
        result = cli("diff", *pair, "--expect-frozen", kind, "--json")
        assert result.exit_code == 1, (kind, result.output)
        assert json.loads(result.stdout)["violations"] == [kind]


def test_another_nan_payload_is_a_bit_change() -> None:
    a = torch.tensor([NAN, 1.0])
    b = a.clone()
    b.view(torch.int32)[0] ^= 1  # still NaN, other bits
    assert torch.isnan(b[0])
    (entry,) = diff_checkpoints({"w": a}, {"w": b}, expect_frozen="w").entries
    assert entry.status == "changed" and entry.violates
    (same,) = diff_checkpoints({"w": a}, {"w": a.clone()}, expect_frozen="w").entries
    assert same.status == "unchanged" and not same.violates


def test_render_of_a_library_report() -> None:
    a = {"w": torch.tensor([INF, 1.0])}
    b = {"w": torch.tensor([-INF, 1.0])}
    out = text(render_diff(diff_checkpoints(a, b)))
    assert "w  changed  1 sign of inf changed" in out and "1.8e+308" not in out
