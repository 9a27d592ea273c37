"""Every table at 60, 80 and 200 columns: a number, a shape and a name are never split or cut.

A pipe or a CI log is 80 columns. A narrow table leaves columns out (and says which, in a footer
line) or writes one row a block; it never wraps ``[8, 64, 32, 32]`` over three lines, cuts
``-0.000169`` to ``-0.0…`` or splits ``conv1.weight`` into ``conv1`` / ``.weig`` / ``ht``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import torch
from rendering import text
from torch import nn
from zoo import SmallCNN

from torchscope import (
    check_step,
    diff_checkpoints,
    estimate_memory,
    grad_report,
    param_stats,
    record,
    summary,
    tree,
)
from torchscope._bench.schema import BenchResult
from torchscope._format import format_bytes, format_shape
from torchscope.render.activations import fmt_value, render_activations
from torchscope.render.bench import render_bench
from torchscope.render.check import render_check
from torchscope.render.diff import render_diff
from torchscope.render.memory import render_memory
from torchscope.render.stats import render_grads, render_param_stats
from torchscope.render.summary import render_summary
from torchscope.render.tree import human_count, render_tree

WIDTHS = (60, 80, 200)


class ProjectionWithAVeryLongTypeName(nn.Linear):
    pass


class LongNames(nn.Module):
    """Long qualified names, long type names, four-dimensional shapes and small signed numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder_embedding_projection = nn.Conv2d(3, 64, 3, padding=1)
        self.encoder_normalization_layer = nn.BatchNorm2d(64)
        self.encoder_activation = nn.ReLU()
        self.attention_output_projection = ProjectionWithAVeryLongTypeName(64, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder_activation(self.encoder_normalization_layer(self.encoder_embedding_projection(x)))
        return self.attention_output_projection(h.mean(dim=(2, 3)))


def model() -> nn.Module:
    torch.manual_seed(0)
    return LongNames()


X = (8, 3, 32, 32)


def lines_of(renderable: object, width: int) -> list[str]:
    out = text(renderable, width=width)
    assert "…" not in out, out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width, out
    return lines


def assert_whole(renderable: object, atoms: Iterable[str], width: int) -> None:
    """Every atom (a name, a shape, a number as the table writes it) stands whole on one line."""
    lines = lines_of(renderable, width)
    missing = [a for a in atoms if not any(a in line for line in lines)]
    assert missing == [], "\n".join([f"split or cut at {width} columns: {missing}", *lines])


def _activations() -> tuple[object, list[str]]:
    m = model()
    with record(m) as rec:
        m(torch.randn(*X))
    report = rec.report()
    atoms = []
    for c in report.calls:
        atoms += [c.module, format_shape(c.shape)]
        if c.stats is not None:
            atoms.append(fmt_value(c.stats.std))
    return render_activations(report, std_bar=None), atoms


def _stats() -> tuple[object, list[str]]:
    data = param_stats(model())
    atoms = [a for r in data.rows for a in (r.name, format_shape(r.shape), fmt_value(r.norm), fmt_value(r.std))]
    return render_param_stats(data), atoms


def _grads() -> tuple[object, list[str]]:
    data = grad_report(model(), input_size=X)
    atoms = [a for la in data.layers for a in (la.name or data.model, la.type, fmt_value(la.grad_norm))]
    return render_grads(data), atoms


def _tree() -> tuple[object, list[str]]:
    data = tree(model())
    atoms = [a for e in data.modules[1:] for a in (e.name.rpartition(".")[2], e.type, human_count(e.params))]
    return render_tree(data), atoms


def _summary() -> tuple[object, list[str]]:
    data = summary(model(), input_size=X, verbose=0)
    atoms = [a for r in data.rows[1:] for a in (r.name, *(format_shape(o.shape) for o in r.outputs))]
    return render_summary(data), atoms


def _memory() -> tuple[object, list[str]]:
    data = estimate_memory(model(), X, device="cpu")
    atoms = [a for m in data.modules for a in (m.name, format_bytes(m.total))]
    return render_memory(data), [*atoms, format_bytes(data.peak)]


def _check() -> tuple[object, list[str]]:
    m = model()
    for p in m.encoder_embedding_projection.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)

    def step() -> None:
        opt.zero_grad()
        m(torch.randn(*X)).sum().backward()
        opt.step()
        with torch.no_grad():  # a step that edits a frozen weight: a violation to show
            m.encoder_embedding_projection.weight.mul_(2)

    report = check_step(m, step, optimizer=opt)
    assert report.violations
    return render_check(report), ["check-freeze", *(v.name for v in report.violations)]


def _diff(tmp: Path) -> tuple[object, list[str]]:
    a = model().state_dict()
    b = {k: v + 1 if k.startswith("attention_output_projection") and v.is_floating_point() else v for k, v in a.items()}
    torch.save(a, tmp / "a.pt")
    torch.save(b, tmp / "b.pt")
    report = diff_checkpoints(tmp / "a.pt", tmp / "b.pt")
    # the tree groups by module: each module's name, then each tensor's own name, whole
    modules = sorted({e.name.rpartition(".")[0] for e in report.entries})
    return render_diff(report), [*modules, "weight", "bias", "7 unchanged", "2 changed"]


def _bench() -> tuple[object, list[str]]:
    from torchscope import bench

    torch.manual_seed(0)
    result = bench(SmallCNN(), mode="both", num_classes=10, device="cpu", batch_size=4, image_size=16, steps=2,
                   windows=2, warmup=1)  # fmt: skip
    result = BenchResult.from_dict(json.loads(json.dumps(result.to_dict())))
    return render_bench(result), ["frozen", "full", result.environment.torch]


TABLES: dict[str, Callable[..., tuple[object, list[str]]]] = {
    "activations": _activations,
    "stats": _stats,
    "grads": _grads,
    "tree": _tree,
    "summary": _summary,
    "memory": _memory,
    "check": _check,
    "bench": _bench,
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[object, list[str]]]:
    return {name: make() for name, make in TABLES.items()}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(TABLES))
def test_no_number_shape_or_name_is_split_or_cut(
    rendered: dict[str, tuple[object, list[str]]], name: str, width: int
) -> None:
    renderable, atoms = rendered[name]
    assert atoms, "the table has nothing to look at"
    assert_whole(renderable, atoms, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_diff_table(tmp_path: Path, width: int) -> None:
    renderable, atoms = _diff(tmp_path)
    assert atoms
    assert_whole(renderable, atoms, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_model_list(cli: Any, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    result = cli("models")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    for name in ("convnext_tiny", "deeplabv3_mobilenet_v3_large", "resnet18"):
        assert any(name in line.split() for line in lines), name


def test_a_narrow_table_says_which_columns_it_left_out(rendered: dict[str, tuple[object, list[str]]]) -> None:
    renderable, _ = rendered["activations"]
    wide = text(renderable, width=200)
    narrow = text(renderable, width=60)
    assert "left out at" not in wide and "Min" in wide.splitlines()[0]
    footer = [line for line in narrow.splitlines() if line.startswith("left out at 60 columns: ")]
    assert len(footer) == 1 and "Min" in footer[0] and "Min" not in narrow.splitlines()[0]
    # the module, its shape and its std stay
    header = narrow.splitlines()[0].split()
    assert header[:2] == ["Module", "Shape"] and "Std" in header


def test_a_table_too_wide_for_any_subset_is_written_one_row_a_block() -> None:
    from rich.table import Table

    from torchscope.render._fit import fitted

    table = Table()
    table.add_column("Parameter")
    table.add_column("Shape")
    table.add_row("encoder.layer.0.attention.self.query.weight", "[768, 768]")
    out = text(fitted(table), width=48)  # the name fits, the name and its shape side by side do not
    assert out.splitlines() == [
        "encoder.layer.0.attention.self.query.weight",
        "  Shape: [768, 768]",
        "one row a block to fit 48 columns (a wider",
        "terminal shows the table)",
    ]
