"""Every result shows itself: repr is its plain-text table with exact counts, the notebook gets escaped,
self-contained HTML from the report page's sections (with pictures), and tabular results become
DataFrames."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, replace

import pytest
import torch
import torchvision
from zoo import build

import torchscope
from torchscope import DiffReport, ModuleTree, ParamStats, StepCheck, TorchscopeError
from torchscope._checkparts.report import Violation
from torchscope._result import Result

SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    model, x = build("small_cnn")
    torchscope.freeze(model, "backbone")
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()

    def step() -> None:
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

    with torchscope.record(model) as rec:
        model(x)
    sd = model.state_dict()
    return {
        "summary": torchscope.summary(model, input_data=x, verbose=0),
        "tree": torchscope.tree(model),
        "check": torchscope.check_step(model, step, optimizer=opt),
        "activations": rec.report(),
        "grads": torchscope.grad_report(model, input_data=x),
        "stats": torchscope.param_stats(model),
        "diff": torchscope.diff_checkpoints(sd, {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}),
        "memory": torchscope.estimate_memory(model, x),
        "bench": torchscope.bench(model, mode="frozen", num_classes=10, device="cpu", batch_size=2, image_size=8,
                                  steps=1, windows=1, warmup=1),
        "report": torchscope.collect_report(model, input_data=x),
    }  # fmt: skip


def assert_self_contained(html: str) -> None:
    without_ns = html.replace(SVG_NS, "")
    assert not re.search(r"https?://", without_ns), "a network URL in the HTML"
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "onclick", "onload"):
        assert forbidden not in without_ns.lower(), forbidden


@pytest.mark.parametrize(
    "name", ["summary", "tree", "check", "activations", "grads", "stats", "diff", "memory", "bench", "report"]
)
def test_every_result_shows_its_table_not_a_dataclass_dump(results: dict[str, Result], name: str) -> None:
    result = results[name]
    text = repr(result)
    assert text == str(result)
    assert not text.startswith(type(result).__name__ + "("), text[:80]
    assert "\x1b[" not in text  # plain text: no terminal codes
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"} and bundle["text/plain"] == text
    html = bundle["text/html"]
    assert html == result._repr_html_() and html.startswith('<div class="tsr"><style>')
    assert_self_contained(html)
    # light and dark: Jupyter's theme variables first, the system's scheme elsewhere
    assert "var(--jp-content-font-color1" in html and "@media (prefers-color-scheme: dark)" in html
    # a result read back from its JSON shows the same
    back = type(result).from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert repr(back) == text and back._repr_html_() == html


def test_counts_are_exact_in_the_text_and_the_html() -> None:
    with torch.device("meta"):
        model = torchvision.models.resnet18()
    t = torchscope.tree(model)
    assert "Total params: 11,689,512" in repr(t)
    html = t._repr_html_()
    assert "<dt>Total params</dt><dd>11,689,512</dd>" in html
    s = torchscope.summary(model, input_size=(1, 3, 224, 224), device="meta", verbose=0)
    assert "<dt>Total params</dt><dd>11,689,512</dd>" in s._repr_html_()
    assert s.total_mult_adds is not None and s.total_mult_adds > 10**9
    assert f"<dt>Total mult-adds</dt><dd>{s.total_mult_adds:,}</dd>" in s._repr_html_()


def test_the_tree_folds_deep_models_with_details() -> None:
    with torch.device("meta"):
        model = torchvision.models.resnet18()
    html = torchscope.tree(model)._repr_html_()
    # the root is open, every deeper module with children starts folded
    assert html.count("<details open>") == 1
    assert html.count("<details>") == sum(1 for _, m in model.named_modules() if next(m.children(), None)) - 1
    assert '<span class="mono">downsample</span>' in html


def test_the_html_escapes_what_users_name(results: dict[str, Result]) -> None:
    diff = results["diff"]
    assert isinstance(diff, DiffReport)
    html = replace(diff, a="<b>a.pt</b>")._repr_html_()
    assert "&lt;b&gt;a.pt&lt;/b&gt;" in html and "<b>a.pt</b>" not in html
    check = results["check"]
    assert isinstance(check, StepCheck)
    marked = replace(check, caveats=('<img src="x">',))
    assert "&lt;img src=&quot;x&quot;&gt;" in marked._repr_html_()


@pytest.mark.parametrize(
    ("name", "titles"),
    [
        ("activations", ["Activation std by depth (log scale)", "Fraction of zeros (dead units) by depth"]),
        ("grads", ["Update ratio by layer: grad norm / param norm (log scale; frozen layers grey)"]),
        ("memory", ["Alive at the peak:"]),
        ("bench", ["Throughput, median images/s (higher is better)"]),
    ],
)
def test_pictures_are_inline_svg(results: dict[str, Result], name: str, titles: list[str]) -> None:
    html = results[name]._repr_html_()
    found = re.findall(r"<svg [^>]*>\s*<title>([^<]*)</title>", html)
    assert len(found) == len(titles)
    for got, want in zip(found, titles, strict=True):
        assert got.startswith(want)


def test_tabular_results_become_dataframes(results: dict[str, Result]) -> None:
    pytest.importorskip("pandas")
    stats = results["stats"]
    assert isinstance(stats, ParamStats)
    df = stats.to_dataframe()
    assert list(df["name"]) == [r.name for r in stats.rows] and int(df["numel"].sum()) == stats.total
    tree = results["tree"]
    assert isinstance(tree, ModuleTree)
    assert list(tree.to_dataframe()["params"]) == [m.params for m in tree.modules]
    for name in ("summary", "check", "activations", "grads", "diff", "memory"):
        assert len(results[name].to_dataframe().columns) > 0, name
    with pytest.raises(TorchscopeError, match=r"^BenchResult has no table of rows; use to_dict\(\)$"):
        results["bench"].to_dataframe()


def test_to_dataframe_without_pandas_names_the_extra(results: dict[str, Result], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(TorchscopeError, match=r"^to_dataframe\(\) needs pandas; install it with pip install 'torchscope\[pandas\]'"):
        results["stats"].to_dataframe()


def test_a_new_result_shows_itself_by_subclassing_alone() -> None:
    # what the freeze guard's result adopts: the base class (and repr=False), nothing else
    @dataclass(frozen=True, repr=False)
    class GuardResult(Result):
        SCHEMA = "torchscope.guard/1"
        steps: int
        violations: tuple[Violation, ...]

    r = GuardResult(1234, (Violation("frozen_param_changed", "fc.<weight>", 0.5, "it moved"),))
    text = repr(r)
    assert text.startswith("GuardResult (torchscope.guard/1)\nsteps: 1,234") and "fc.<weight>" in text
    html = r._repr_html_()
    assert "<dt>steps</dt><dd>1,234</dd>" in html and "fc.&lt;weight&gt;" in html
    assert GuardResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
