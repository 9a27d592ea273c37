"""examples/notebook.ipynb in a real Jupyter kernel: each result cell shows its table once, as HTML with
exact counts, and nothing is printed as a stream; docs/notebook.md holds this run's real outputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nbclient", reason="the test extra installs nbclient, ipykernel and nbformat")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("gen_notebook_docs", ROOT / "scripts" / "gen_notebook_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run() -> tuple[Any, Any]:
    script = _script()
    return script, script.execute()


def cell_of(nb: Any, code: str) -> Any:
    [cell] = [c for c in nb.cells if c.cell_type == "code" and code in "".join(c.source)]
    return cell


@pytest.mark.slow  # starts a kernel and runs resnet18 on the CPU (about half a minute)
@pytest.mark.parametrize(
    ("code", "counts"),
    [
        ("torchscope.summary(", ["<dt>Total params</dt><dd>11,689,512</dd>", "<dt>Trainable params</dt><dd>11,689,512</dd>"]),
        ("torchscope.tree(", ["<dt>Total params</dt><dd>11,689,512</dd>", "<dt>Non-trainable params</dt><dd>0</dd>"]),
        ("torchscope.check_step(", ["✗ 60 violation(s)", "60 frozen of 60 buffers checked"]),
        ("rec.report()", ["outputs checked"]),
        ("torchscope.estimate_memory(", [" bytes) in "]),
    ],
)
def test_each_result_shows_once_as_html_with_exact_counts(run: tuple[Any, Any], code: str, counts: list[str]) -> None:
    _, nb = run
    cell = cell_of(nb, code)
    kinds = [o.output_type for o in cell.outputs]
    # one displayed result, no table printed a second time (no stream, no extra display)
    assert kinds == ["execute_result"], kinds
    data = cell.outputs[0]["data"]
    html, text = data["text/html"], data["text/plain"]
    assert html.startswith('<div class="tsr"><style>') and "<script" not in html
    for c in counts:
        assert c in html, c
    assert not text.startswith(("Summary(", "ModuleTree(", "StepCheck(", "ActivationReport(", "MemoryReport("))


@pytest.mark.slow
def test_the_tree_cell_folds_the_model_and_the_memory_cell_draws_its_bar(run: tuple[Any, Any]) -> None:
    _, nb = run
    tree = cell_of(nb, "torchscope.tree(").outputs[0]["data"]
    assert "<details open>" in tree["text/html"] and "<details>" in tree["text/html"]
    assert "Total params: 11,689,512" in tree["text/plain"]
    memory = cell_of(nb, "torchscope.estimate_memory(").outputs[0]["data"]["text/html"]
    assert "<svg " in memory and "Alive at the peak" in memory


@pytest.mark.slow
def test_docs_notebook_page_is_this_runs_output(run: tuple[Any, Any]) -> None:
    script, nb = run
    page = (ROOT / "docs" / "notebook.md").read_text(encoding="utf-8")
    assert page == script.render(nb), "docs/notebook.md is out of date: run python scripts/gen_notebook_docs.py"


def test_the_notebook_is_stored_without_outputs() -> None:
    nb = json.loads((ROOT / "examples" / "notebook.ipynb").read_text(encoding="utf-8"))
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
