"""Deeply nested models: what plain torch runs, torchscope runs; what it cannot is one line, exit 2.

Our hooks make torch spend one more frame per nesting level (and check-freeze deep-copies the model),
so a model plain torch runs at the recursion limit used to fail under us with a RecursionError.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import torchscope

DEEP_PY = """
import sys
from torch import nn

{prelude}

def build(depth={depth}):
    m = nn.Linear(4, 4)
    for _ in range(depth):
        m = nn.Sequential(m)
    return m

def frozen(depth={depth}):
    body = nn.Linear(4, 4)
    body.requires_grad_(False)
    for _ in range(depth - 1):
        body = nn.Sequential(body)
    return nn.Sequential(body, nn.Linear(4, 3))
"""


def nested(depth: int, frozen: bool = False) -> nn.Module:
    m: nn.Module = nn.Linear(4, 4).requires_grad_(not frozen)
    for _ in range(depth):
        m = nn.Sequential(m)
    return m


def deepest_plain_torch_runs() -> int:
    """The deepest nesting a plain forward pass survives here, at the current recursion limit."""
    lo, hi = 1, sys.getrecursionlimit()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            nested(mid)(torch.randn(2, 4))
            lo = mid
        except RecursionError:
            hi = mid - 1
    return lo


def _summary(m: nn.Module) -> object:
    return torchscope.summary(m, input_size=(2, 4))


def _record(m: nn.Module) -> object:
    with torchscope.record(m) as rec:
        m(torch.randn(2, 4))
    return rec.report()


def _grads(m: nn.Module) -> object:
    return torchscope.grad_report(m, input_size=(2, 4), loss="sum")


def _check_freeze(m: nn.Module) -> object:
    return torchscope.check_freeze(m, input_size=(2, 4))


RUNS = {"summary": _summary, "record": _record, "grads": _grads, "check_freeze": _check_freeze}


def deep(run: str, depth: int) -> nn.Module:
    # check-freeze needs something frozen: a frozen nested body under a trainable head
    if run == "check_freeze":
        return nn.Sequential(nested(depth - 1, frozen=True), nn.Linear(4, 3))
    return nested(depth)


@pytest.fixture(scope="module")
def edge() -> int:
    return deepest_plain_torch_runs()


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_depth_plain_torch_runs_runs_under_torchscope(run: str, edge: int) -> None:
    limit = sys.getrecursionlimit()
    model = deep(run, edge)
    model(torch.randn(2, 4))  # plain torch runs it, at the edge
    assert RUNS[run](model) is not None
    assert sys.getrecursionlimit() == limit  # raised for our call only


def test_the_edge_is_where_torch_stops() -> None:
    edge = deepest_plain_torch_runs()
    assert edge > 100  # the measured depth is a real one, not a failure to run at all
    with pytest.raises(RecursionError):
        nested(edge + 10)(torch.randn(2, 4))


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_model_too_deep_for_python_is_one_line(run: str) -> None:
    limit = sys.getrecursionlimit()
    with pytest.raises(torchscope.SpecError, match=r"nested 5000 modules deep: .*sys\.setrecursionlimit\(\d+\)"):
        RUNS[run](deep(run, 5000))
    assert sys.getrecursionlimit() == limit


def test_tree_of_a_model_too_deep_for_python_is_one_line() -> None:
    with pytest.raises(torchscope.SpecError, match=r"nested 5000 modules deep: walking its modules"):
        torchscope.tree(nested(5000))


def test_a_model_deeper_than_a_forward_allows_is_refused_before_any_hook() -> None:
    model = nested(sys.getrecursionlimit() // 3)
    with pytest.raises(torchscope.SpecError, match="a forward pass through it needs up to"):
        torchscope.summary(model, input_size=(2, 4))
    assert torchscope.tree(model).total_params == 20  # walking it is fine: no forward pass


def _model_file(tmp_path: Path, depth: int, prelude: str = "", name: str = "deep") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(DEEP_PY.format(depth=depth, prelude=prelude))
    return str(path)


@pytest.mark.parametrize(
    ("command", "attr"),
    [("summary", "build"), ("activations", "build"), ("grads", "build"), ("check-freeze", "frozen")],
)
def test_cli_runs_a_model_200_deep(tmp_path: Path, cli, command: str, attr: str) -> None:
    spec = f"{_model_file(tmp_path, 200)}:{attr}"
    nested(200)(torch.randn(2, 4))  # plain torch runs it
    result = cli(command, spec, "--input-size", "2,4", "--no-color")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["summary", "activations", "grads", "check-freeze", "tree", "stats"])
def test_cli_refuses_a_model_5000_deep_in_one_line(tmp_path: Path, cli, command: str) -> None:
    spec = f"{_model_file(tmp_path, 5000)}:{'frozen' if command == 'check-freeze' else 'build'}"
    args = [] if command in ("tree", "stats") else ["--input-size", "2,4"]
    result = cli(command, spec, *args, "--no-color")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "nested 5000 modules deep" in result.stderr and "sys.setrecursionlimit" in result.stderr


def test_cli_the_fix_in_the_error_works(tmp_path: Path, cli) -> None:
    # the limit a 300-deep model asks for, set where the message says: at the top of the model's file
    spec = f"{_model_file(tmp_path, 300)}:build"
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(1000)  # Python's default, as in a fresh `torchscope` process
        refused = cli("summary", spec, "--input-size", "2,4", "--no-color")
        assert refused.exit_code == 2, refused.output
        fix = refused.stderr.split("sys.setrecursionlimit(")[1].split(")")[0]
        spec = f"{_model_file(tmp_path, 300, prelude=f'sys.setrecursionlimit({fix})', name='fixed')}:build"
        result = cli("summary", spec, "--input-size", "2,4", "--no-color")
        assert result.exit_code == 0, result.output
        assert "Total params: 20\nTrainable params: 20" in result.stdout
    finally:
        sys.setrecursionlimit(limit)
