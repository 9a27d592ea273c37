"""The report page never shows an empty activation section as if it were an all-clear."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

CliRun = Callable[..., Result]  # the `cli` fixture of conftest

MODEL = """
import torch
from torch import nn

class Bare(nn.Module):  # its own parameter, no submodule: nothing for record() to hook
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        return x @ self.w
"""


def test_report_of_a_model_without_submodules_says_its_activations_were_not_checked(
    cli: CliRun, tmp_path: Path
) -> None:
    (tmp_path / "bare.py").write_text(MODEL)
    page = tmp_path / "bare.html"
    result = cli("report", f"{tmp_path / 'bare.py'}:Bare", "--input-size", "2,4", "--page", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "activations not checked: the model has no submodules to record" in html
