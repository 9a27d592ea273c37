"""The plugin's tally says what the user believes: a check failure that the test expected (caught by
pytest.raises or an except, or in an xfail test) is not a failed check; one whose AssertionError
escaped the test is."""

from __future__ import annotations

import json

import pytest

# pytester's in-process runs drop the modules an inner run imported; torch registers C++ operator
# libraries on import and cannot import them twice, so import them out here, once.
import torch._dynamo  # noqa: F401  # isort: skip
import torchscope._check  # isort: skip
import torchscope.testing  # noqa: F401  # isort: skip

pytest_plugins = ["pytester"]

SUITE = """
import pytest
import torch
from torchscope.testing import assert_eval_mode, assert_output_shape

def _model():
    return torch.nn.Linear(4, 2)  # in train mode: assert_eval_mode fails on it

def test_raises():
    with pytest.raises(AssertionError, match="wrong mode"):
        assert_eval_mode(_model())

def test_except():
    try:
        assert_output_shape(_model(), torch.zeros(3, 4), (3, 5))
    except AssertionError as exc:
        assert exc.check == "assert_output_shape"

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert_eval_mode(_model())

def test_escapes():
    assert_eval_mode(_model())

def test_wrapped():
    try:
        assert_output_shape(_model(), torch.zeros(3, 4), (3, 5))
    except AssertionError as exc:
        raise RuntimeError("shape check failed") from exc

def test_one_caught_one_escaping():
    with pytest.raises(AssertionError):
        assert_eval_mode(_model())
    assert_output_shape(_model(), torch.zeros(3, 4), (3, 7))

def test_fails_for_another_reason():
    with pytest.raises(AssertionError):
        assert_eval_mode(_model())
    raise ValueError("unrelated")

def test_passes():
    assert_output_shape(_model(), torch.zeros(3, 4), (3, 2))
"""


@pytest.fixture
def outcome(pytester: pytest.Pytester) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--torchscope-report=report.json")
    result.assert_outcomes(passed=3, failed=4, xfailed=1)
    return result, json.loads((pytester.path / "report.json").read_text())


def test_only_escaped_failures_count_as_failed_checks(outcome: tuple[pytest.RunResult, dict]) -> None:
    _, data = outcome
    failed = sorted((r["test"].split("::")[1], r["check"]) for r in data["checks"] if not r["ok"] and not r["expected"])
    assert failed == [
        ("test_escapes", "assert_eval_mode"),
        ("test_one_caught_one_escaping", "assert_output_shape"),
        ("test_wrapped", "assert_output_shape"),  # caught, then re-raised from: it still failed the test
    ]
    expected = sorted(r["test"].split("::")[1] for r in data["checks"] if not r["ok"] and r["expected"])
    assert expected == ["test_except", "test_fails_for_another_reason", "test_one_caught_one_escaping",
                        "test_raises", "test_xfail"]  # fmt: skip
    assert data["summary"]["run"] == 9
    assert (data["summary"]["failed"], data["summary"]["expected"]) == (3, 5)
    assert data["summary"]["per_check"]["assert_eval_mode"] == {"run": 5, "failed": 1, "expected": 4}


def test_the_terminal_tally_matches(outcome: tuple[pytest.RunResult, dict]) -> None:
    result, _ = outcome
    result.stdout.fnmatch_lines(
        [
            "*= torchscope =*",
            "9 checks run, 3 failed, 5 failed as the test expected (caught in the test, or xfail)",
            "  assert_eval_mode: 5 run, 1 failed, 4 failed as the test expected (caught in the test, or xfail)",
            "  assert_output_shape: 4 run, 2 failed, 1 failed as the test expected (caught in the test, or xfail)",
            "failed checks in failing tests:",
        ]
    )
    section = result.stdout.str().split("failed checks in failing tests:")[1]
    listed = section.split("short test summary info")[0]
    assert "test_escapes: assert_eval_mode" in listed
    assert "test_one_caught_one_escaping: assert_output_shape" in listed
    assert "test_fails_for_another_reason" not in listed  # its check failure was caught by the test


def test_a_green_suite_of_expected_failures_reports_none_failed(pytester: pytest.Pytester) -> None:
    # the shape of torchscope's own suite: every helper failure is asserted with pytest.raises
    pytester.makepyfile(
        test_green="""
        import pytest
        import torch
        from torchscope.testing import assert_eval_mode

        @pytest.mark.parametrize("i", range(4))
        def test_train_mode_is_caught(i):
            with pytest.raises(AssertionError):
                assert_eval_mode(torch.nn.Linear(2, 2))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["4 checks run, 0 failed, 4 failed as the test expected*"])
    assert "failed checks in failing tests" not in result.stdout.str()
