"""summary() of TorchScript, torch.compile and torch.export models: the counts are the model's.

Totals come from the model's parameters, never from the modules a hook saw; where no hook can run
(inside a ScriptModule) a layer's shapes and mult-adds are unknown, never 0; an exported program's
rows come from its graph.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from zoo import SharedChild, SmallCNN, TiedLM

import torchscope


@pytest.fixture(autouse=True)
def _quiet_torchscript():
    # torch.jit.script/trace warn that TorchScript is deprecated; scripting old models is the point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


class WithScriptedHead(nn.Module):
    """An eager model with a TorchScript child, as a user gets by scripting one part."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(100, 100)
        self.head = torch.jit.script(nn.Sequential(nn.Linear(100, 10), nn.ReLU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))


def _params(s: torchscope.Summary) -> list[tuple[str, int]]:
    return [(r.name, r.params) for r in s.rows if r.call == 0]


@pytest.mark.parametrize("how", ["script", "trace"])
def test_a_torchscript_model_counts_what_the_eager_model_counts(how: str) -> None:
    torch.manual_seed(0)
    eager = SmallCNN().eval()
    x = torch.randn(2, 3, 8, 8)
    jit = torch.jit.script(eager) if how == "script" else torch.jit.trace(eager, x)
    want = torchscope.summary(eager, input_data=x)
    got = torchscope.summary(jit, input_data=x)
    assert got.total_params == want.total_params == torchscope.tree(jit).total_params > 0
    assert got.total_mult_adds == want.total_mult_adds > 0
    assert got.model == "SmallCNN"
    assert _params(got) == _params(want)  # every layer's row, with its parameters
    inner = [r for r in got.to_dict()["rows"] if r["name"]]
    assert inner and all(r["mult_adds"] is None and not r["shapes_known"] for r in inner)


def test_unknown_is_shown_as_unknown_not_zero() -> None:
    torch.manual_seed(0)
    text = str(torchscope.summary(torch.jit.script(SmallCNN()), input_size=(2, 3, 8, 8)))
    conv = next(line for line in text.splitlines() if line.lstrip().startswith("0 (Conv2d)"))
    assert conv.split()[2:] == ["?", "?", "224", "?"]
    assert "Total params: 0" not in text and "Total params: 867\nTrainable params: 867" in text
    assert "no Python hook runs inside a scripted module" in text


def test_a_scripted_child_counts_in_the_footer_and_its_own_row() -> None:
    torch.manual_seed(0)
    s = torchscope.summary(WithScriptedHead(), input_size=(1, 100))
    rows = {r.name: r for r in s.rows}
    assert s.total_params == rows[""].params == torchscope.tree(WithScriptedHead()).total_params == 11_110
    assert (rows["head"].params, rows["head"].mult_adds, rows["head"].outputs[0].shape) == (1010, 1000, (1, 10))
    assert (rows["head.0"].params, rows["head.0"].mult_adds, rows["head.0"].opaque) == (1010, None, True)
    assert s.total_mult_adds == 11_000 and s.not_called == ()


def test_tied_weights_in_torchscript_count_once() -> None:
    torch.manual_seed(0)
    eager = TiedLM()
    ids = torch.randint(0, 20, (2, 5))
    got = torchscope.summary(torch.jit.script(eager), input_data=ids)
    assert got.total_params == torchscope.summary(eager, input_data=ids).total_params == 20 * 8 + 8 * 8 + 8


def test_a_compiled_model_is_summarised_through_its_original_module() -> None:
    torch.manual_seed(0)
    eager = SmallCNN()
    got = torchscope.summary(torch.compile(eager), input_size=(2, 3, 8, 8))
    want = torchscope.summary(eager, input_size=(2, 3, 8, 8))
    assert got.to_dict()["rows"] == want.to_dict()["rows"]
    assert any("torch.compile" in note for note in got.notes)


@pytest.mark.parametrize("model", [SharedChild, SmallCNN])
@pytest.mark.parametrize("form", ["program", "module"])
def test_an_exported_program_has_the_eager_rows(model: type[nn.Module], form: str) -> None:
    torch.manual_seed(0)
    eager = model().eval()
    x = torch.randn(3, 6) if model is SharedChild else torch.randn(2, 3, 8, 8)
    program = torch.export.export(eager, (x,))
    got = torchscope.summary(program if form == "program" else program.module(), input_data=x)
    want = torchscope.summary(eager, input_data=x)

    def rows(s: torchscope.Summary) -> list[tuple[object, ...]]:
        return [(r.name, r.type, r.call, r.inputs, r.outputs, r.params, r.mult_adds) for r in s.rows]

    assert rows(got) == rows(want)
    assert (got.total_params, got.total_mult_adds, got.not_called) == (want.total_params, want.total_mult_adds, ())


def test_cli_summary_and_tree_agree_on_a_torchscript_file(tmp_path: Path, cli) -> None:
    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(SmallCNN()), str(path))
    summary = cli("summary", path, "--input-size", "2,3,8,8", "--json")
    tree = cli("tree", path, "--json")
    assert summary.exit_code == 0 and tree.exit_code == 0, summary.output + tree.output
    s, t = json.loads(summary.stdout), json.loads(tree.stdout)
    assert s["total_params"] == t["total_params"] == sum(p.numel() for p in SmallCNN().parameters())
    tree_rows = {m["name"]: m["params"] for m in t["modules"]}
    assert {r["name"]: r["params"] for r in s["rows"]} == tree_rows


def test_cli_summary_of_an_export_archive_reads_the_graph(tmp_path: Path, cli) -> None:
    torch.manual_seed(0)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(SmallCNN().eval(), (torch.randn(2, 3, 8, 8),)), str(path))
    result = cli("summary", path, "--input-size", "2,3,8,8", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    assert rows["backbone.0"]["outputs"][0]["shape"] == [2, 8, 8, 8]
    assert rows["backbone.0"]["mult_adds"] == 2 * 8 * 8 * 8 * 3 * 9
    assert rows["fc"]["type"] == "Linear" and "_guards_fn" not in rows


def test_an_exported_chain_of_single_children_keeps_every_level() -> None:
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Sequential(nn.Sequential(nn.Linear(4, 4))))
    x = torch.randn(2, 4)
    got = torchscope.summary(torch.export.export(eager, (x,)), input_data=x)
    assert [(r.name, r.depth, r.mult_adds) for r in got.rows] == [
        ("", 0, 32), ("0", 1, 32), ("0.0", 2, 32), ("0.0.0", 3, 32),
    ]  # fmt: skip
