"""The pytest plugin, driven through pytester: passing and failing suites, exact failure text,
the seed fixture and marker, the per-test report fixture, --torchscope-report and pytest-xdist."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch

# pytester's in-process runs drop the modules an inner run imported; torch registers C++ operator
# libraries on import and cannot import them twice, so import them out here, once.
import torch._dynamo  # isort: skip
import torchscope._check  # isort: skip
import torchscope.testing  # noqa: F401  # isort: skip

pytest_plugins = ["pytester"]

SHAPE_SUITE = """
import torch
from torchscope.testing import assert_output_shape

def test_ok():
    assert_output_shape(torch.nn.Linear(4, 2), torch.zeros(3, 4), (3, 2))

def test_wrong_head():
    assert_output_shape(torch.nn.Linear(4, 2), torch.zeros(3, 4), (3, 5))
"""

BN_DRIFT_SUITE = """
import torch
from torch import nn
from torchscope.testing import expect_frozen

def test_bn_drift():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(2, 3, 6, 6))
    model[0].requires_grad_(False)
    model[1].requires_grad_(False)
    opt = torch.optim.SGD(model[3].parameters(), lr=0.1)
    model.train()
    with expect_frozen(model, "0", "1"):
        opt.zero_grad()
        model(torch.randn(2, 3, 6, 6)).sum().backward()
        opt.step()
"""


def test_passing_and_failing_suite_with_exact_failure_text(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shapes=SHAPE_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: assert_output_shape: 1 output with an unexpected shape",
            "E       ",
            "E         output  expected  actual",
            "E         ------  --------  ------",
            "E         out     [[]3, 5]    [[]3, 2]",
            "E       ",
            "E       fix: check the head's out_features and any flatten/view/permute before it",
        ]
    )
    # The traceback stops at the user's call: no frames from torchscope.testing or the code behind it.
    assert "torchscope/testing.py" not in result.stdout.str()
    assert "torchscope/_testing/" not in result.stdout.str()
    assert "\x1b[" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*= torchscope =*",
            "2 checks run, 1 failed",
            "  assert_output_shape: 2 run, 1 failed",
            "failed checks in failing tests:",
            "  test_shapes.py::test_wrong_head: assert_output_shape",
        ]
    )


def test_exact_text_of_a_frozen_violation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bn=BN_DRIFT_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: expect_frozen: 3 of 7 tensors expected frozen ('0', '1') changed",
            "E       ",
            "E         kind                   name                   shape  max |Δ|  cause",
            "E         ---------------------  ---------------------  -----  -------  -----",
            "E         frozen_buffer_changed  1.running_mean         [[]4]    *  [[]1[]]",
            "E         frozen_buffer_changed  1.running_var          [[]4]    *  [[]1[]]",
            "E         frozen_buffer_changed  1.num_batches_tracked  [[][]]     1        [[]1[]]",
            "E       ",
            "E         [[]1[]] 3 tensors (1.running_mean, 1.running_var, 1.num_batches_tracked): its BatchNorm2d module "
            "ran in train mode, so its running stats moved",
            "E             fix: call .eval() on the frozen norm layers after every model.train(), "
            "or use torchvision.ops.FrozenBatchNorm2d",
        ]
    )
    assert "tensor(" not in result.stdout.str()


NEVER_FROZEN_SUITE = """
import torch
from torch import nn
from torchscope.testing import expect_frozen

def test_backbone_frozen():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.features = nn.Sequential(*[nn.Sequential(nn.Linear(4, 4), nn.Tanh()) for _ in range(10)])
    model.head = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # the backbone was never frozen
    with expect_frozen(model, "features.*"):
        opt.zero_grad()
        model(torch.randn(3, 4)).square().mean().backward()
        opt.step()
"""


def test_one_cause_said_once_in_the_failure_the_summary_and_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_backbone=NEVER_FROZEN_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--torchscope-report=report.json")
    result.assert_outcomes(failed=1)
    cause = "it has requires_grad=True, so backward gives it a grad and the optimizer updates it"
    result.stdout.fnmatch_lines(
        [
            "E         [[]1[]] 20 tensors (features.0.0.weight, features.0.0.bias, features.1.0.weight and 17 more): "
            + cause,
            "E             fix: torchscope.freeze(model, 'features.*')",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "failed checks in failing tests:",
            "  test_backbone.py::test_backbone_frozen: expect_frozen",
            "    20 frozen_param_changed (features.0.0.weight, features.0.0.bias, features.1.0.weight and 17 more): "
            + cause,
            "      fix: torchscope.freeze(model, 'features.*')",
            "report written to report.json",
        ]
    )
    # Once in the failure, once in the summary; never one call per tensor. pytest's own short summary
    # repeats the whole message where CI is set (it does not truncate there), so it is left out.
    out = result.stdout.str().partition("short test summary info")[0]
    assert out.count(cause) == 2
    assert out.count("torchscope.freeze(") == 2
    [record] = json.loads((pytester.path / "report.json").read_text())["checks"]
    [group] = record["report"]["groups"]
    assert (group["count"], group["fix"], len(group["names"])) == (20, "torchscope.freeze(model, 'features.*')", 20)
    assert len(record["report"]["violations"]) == 20


def test_no_checks_no_summary_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "= torchscope =" not in result.stdout.str()


def test_seed_fixture_and_marker_restore_rng(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import random
        import numpy as np
        import pytest
        import torch

        SEEN = {}

        def draw():
            return (torch.rand(1).item(), random.random(), float(np.random.rand()))

        def test_fixture(torchscope_seed):
            assert torchscope_seed == 0
            SEEN["fixture"] = draw()

        @pytest.mark.torchscope(seed=0)
        def test_marker_same_seed():
            assert draw() == SEEN["fixture"]

        @pytest.mark.torchscope(seed=1)
        def test_marker_other_seed(torchscope_seed):
            assert torchscope_seed == 1
            assert draw() != SEEN["fixture"]

        @pytest.mark.torchscope(seed="one")
        def test_bad_seed():
            pass
        """
    )
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.torchscope(seed='one'): seed must be an int, e.g. seed=0*"])
    # Every seeded test put the RNG state back: this process's generators are where they were.
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.torchscope(seed=0): seed torch, random and numpy*"])


def test_report_fixture_and_json_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import torch
        from torchscope.testing import assert_eval_mode, assert_output_shape

        def test_two_checks(torchscope_report):
            model = torch.nn.Linear(4, 2)
            assert_output_shape(model, torch.zeros(3, 4), (3, 2))
            with pytest.raises(AssertionError):
                assert_eval_mode(model)
            assert torchscope_report.checks == ["assert_output_shape", "assert_eval_mode"]
            assert [r["check"] for r in torchscope_report.failed] == ["assert_eval_mode"]
            assert torchscope_report[1]["report"] == {"ok": False, "train_mode": [""]}

        def test_own_report(torchscope_report):
            assert len(torchscope_report) == 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--torchscope-report=out/report.json")
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "out" / "report.json").read_text())
    # The failed check sat in pytest.raises of a passing test: expected, not a failed check.
    assert data["summary"] == {
        "run": 2,
        "failed": 0,
        "expected": 1,
        "per_check": {
            "assert_eval_mode": {"run": 1, "failed": 0, "expected": 1},
            "assert_output_shape": {"run": 1, "failed": 0, "expected": 0},
        },
    }
    assert [(r["test"], r["check"], r["ok"]) for r in data["checks"]] == [
        ("test_report_fixture_and_json_report.py::test_two_checks", "assert_output_shape", True),
        ("test_report_fixture_and_json_report.py::test_two_checks", "assert_eval_mode", False),
    ]
    assert data["checks"][1]["message"].startswith("assert_eval_mode: 1 module in the wrong mode")
    assert data["checks"][1]["expected"] is True
    result.stdout.fnmatch_lines(
        ["2 checks run, 0 failed, 1 failed as the test expected (caught in the test, or xfail)",
         "report written to out/report.json"]
    )  # fmt: skip
    # ... and not listed as a failure.
    assert "failed checks in failing tests" not in result.stdout.str()


@pytest.mark.slow
def test_xdist_workers_parts_are_merged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_many="""
        import pytest
        import torch
        from torchscope.testing import assert_output_shape

        @pytest.mark.parametrize("n", range(6))
        def test_shape(n):
            assert_output_shape(torch.nn.Linear(2, 3), torch.zeros(n + 1, 2), (n + 1, 3 if n else 4))
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--torchscope-report=r.json")
    result.assert_outcomes(passed=5, failed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["summary"]["run"] == 6 and data["summary"]["failed"] == 1
    assert sorted(r["test"] for r in data["checks"]) == sorted(f"test_many.py::test_shape[{n}]" for n in range(6))
    result.stdout.fnmatch_lines(["6 checks run, 1 failed", "  test_many.py::test_shape[[]0[]]: assert_output_shape"])


@pytest.mark.slow
def test_plugin_import_is_cheap() -> None:
    code = "import sys, torchscope.pytest_plugin; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_helpers_are_assert_rewritten(pytester: pytest.Pytester) -> None:
    # A fresh interpreter: the plugin registers the rewrite before any test module imports the helpers.
    pytester.makepyfile(
        """
        import sys
        import torchscope.testing

        def test_loaders():
            names = sorted(n for n in sys.modules if n == "torchscope.testing" or n.startswith("torchscope._testing"))
            loaders = {n: type(sys.modules[n].__loader__).__name__ for n in names}
            assert "torchscope._testing.step" in loaders
            assert set(loaders.values()) == {"AssertionRewritingHook"}, loaders
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error::pytest.PytestAssertRewriteWarning")
    result.assert_outcomes(passed=1)
