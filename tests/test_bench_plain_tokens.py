"""bench of a plain module fed token ids says what it needs, never that a model with a head has none."""

from __future__ import annotations

from pathlib import Path

MODEL = """
from torch import nn

class TextClassifier(nn.Module):  # an embedding and a linear head, no config, no labels argument
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.emb(x).mean(1))
"""


def test_bench_of_a_plain_token_module_names_the_missing_loss_not_a_missing_head(tmp_path: Path, cli) -> None:
    (tmp_path / "text.py").write_text(MODEL)
    spec = f"{tmp_path / 'text.py'}:TextClassifier"
    res = cli("bench", "-m", spec, "--input-size", "4,8", "--dtype", "long", "--window-steps", "1", "--no-check")
    assert res.exit_code == 2, res.output
    assert "TextClassifier takes token ids but computes no loss of its own" in res.stderr
    assert "no head" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
