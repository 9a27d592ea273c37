"""torchscope's pytest plugin: seed fixture, per-test check reports, a session report and summary.

pytest loads this module on every run (entry point ``pytest11``), so it imports neither torch nor
numpy at module level; the fixtures import them when a test asks for them.

- ``torchscope_seed``: seeds torch, random and numpy for one test and restores the RNG state after.
  ``@pytest.mark.torchscope(seed=0)`` selects it with a chosen seed.
- ``torchscope_report``: the records of the torchscope checks run in the current test.
- ``--torchscope-report=PATH``: every check record of the session as JSON (merged across
  pytest-xdist workers), and a ``torchscope`` terminal summary section counting checks run/failed
  and naming, under each failed check of a failing test, each of its causes once with the one fix.

A check failed when its ``AssertionError`` escaped the test (what pytest reports as the failure);
one that the test caught itself (``pytest.raises``, an ``except``) or that failed in an ``xfail``
test was expected: its record says ``"expected": True`` and the tally counts it apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# An ``assert`` in a helper then shows pytest's diff. Registered before any test module imports
# them: the public facade and the private package that holds the helpers' code.
pytest.register_assert_rewrite("torchscope.testing", "torchscope._testing")

__all__ = ["CheckLog", "record_check"]

DEFAULT_SEED = 0
MAX_FAILED_LINES = 10
MAX_CAUSES = 3  # per failed check in the terminal summary
FEW_NAMES = 3
_WORKER_KEY = "torchscope_checks"


class CheckLog:
    """The check records of one test (``torchscope_report``) or one session.

    Each record is a plain dict: ``check`` (helper name), ``test`` (node id), ``ok``, ``message``
    (the failure text, or ``None``) and ``report`` (the check's ``to_dict()``, or ``None``).
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.records[index]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The records whose check failed and was not expected by the test (see :attr:`expected`)."""
        return [r for r in self.records if not r["ok"] and not r.get("expected")]

    @property
    def expected(self) -> list[dict[str, Any]]:
        """The records whose check failed as the test expected: its AssertionError was caught inside
        the test (``pytest.raises``, ``except``), or the test is ``xfail``. Known once the test ended."""
        return [r for r in self.records if not r["ok"] and r.get("expected")]

    @property
    def checks(self) -> list[str]:
        """The names of the checks, in the order they ran."""
        return [r["check"] for r in self.records]

    def add(self, report: Any, *, check: str = "check_step") -> dict[str, Any]:
        """Log a report you collected yourself (anything with ``to_dict()`` and ``ok``)."""
        data = report.to_dict() if hasattr(report, "to_dict") else dict(report)
        ok = bool(getattr(report, "ok", data.get("ok", True)))
        rec = {"check": check, "test": "", "ok": ok, "message": None if ok else str(report), "report": data}
        record_check(rec)
        if not any(r is rec for r in self.records):
            self.records.append(rec)
        return rec


class _Session:
    """Per-config state: every record of the session, and the per-test logs listening now."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.log = CheckLog()
        self.current_test = ""
        self.listeners: list[CheckLog] = []
        self.failed_tests: set[str] = set()
        # The failed checks of the running test with their errors (held until the test ends, then
        # judged: escaped the test, or caught inside it), and the errors that escaped so far.
        self.pending: list[tuple[BaseException, dict[str, Any]]] = []
        self.escaped: set[int] = set()
        self.xfailed = False

    def record(self, rec: dict[str, Any], error: BaseException | None = None) -> None:
        if not rec.get("test"):
            rec["test"] = self.current_test
        if error is not None:
            self.pending.append((error, rec))
        self.log.records.append(rec)
        for listener in self.listeners:
            listener.records.append(rec)

    def judge(self) -> None:
        """At the end of a test: a failed check whose error did not escape it was expected."""
        for error, rec in self.pending:
            rec["expected"] = self.xfailed or id(error) not in self.escaped
        self.pending.clear()
        self.escaped.clear()
        self.xfailed = False


_SESSION_KEY = pytest.StashKey[_Session]()
# Innermost configured session last: pytester's in-process runs nest one session inside another.
_ACTIVE: list[_Session] = []


def record_check(rec: dict[str, Any], error: BaseException | None = None) -> None:
    """Called by :mod:`torchscope.testing` after each check, with the ``AssertionError`` it is about
    to raise when it failed; a no-op outside a pytest session."""
    if _ACTIVE:
        _ACTIVE[-1].record(rec, error)


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """The error, what caused it or was being handled when it was raised, and an ExceptionGroup's members."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torchscope", "torchscope model checks")
    group.addoption(
        "--torchscope-report",
        action="store",
        metavar="PATH",
        default=None,
        help="write the report of every torchscope check of the session to PATH as JSON.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "torchscope(seed=0): seed torch, random and numpy for this test (the torchscope_seed fixture) "
        "and restore the RNG state afterwards.",
    )
    session = _Session(config)
    config.stash[_SESSION_KEY] = session
    _ACTIVE.append(session)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None and session in _ACTIVE:
        _ACTIVE.remove(session)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _ACTIVE:
        _ACTIVE[-1].current_test = nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Note which errors escaped the test in this phase (returns None: pytest makes the report)."""
    if _ACTIVE and call.excinfo is not None:
        _ACTIVE[-1].escaped.update(id(e) for e in _chain(call.excinfo.value))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _ACTIVE:
        return
    state = _ACTIVE[-1]
    if report.failed:
        state.failed_tests.add(report.nodeid)
    if hasattr(report, "wasxfail"):
        state.xfailed = True
    if report.when == "teardown":
        state.judge()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist controller: merge the records a worker sent back."""
    session = node.config.stash.get(_SESSION_KEY, None)
    part = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if session is not None and part:
        session.log.records.extend(json.loads(part))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_SESSION_KEY, None)
    if state is None:
        return
    if _is_worker(config):
        # Each worker sends its own part; the controller merges them in pytest_testnodedown.
        config.workeroutput[_WORKER_KEY] = json.dumps(state.log.records, default=str)  # type: ignore[attr-defined]
        return
    path = config.getoption("torchscope_report")
    if path:
        _write_report(Path(path), state.log)


def _summary(log: CheckLog) -> dict[str, Any]:
    per_check: dict[str, dict[str, int]] = {}
    for r in log:
        entry = per_check.setdefault(r["check"], {"run": 0, "failed": 0, "expected": 0})
        entry["run"] += 1
        if not r["ok"]:
            entry["expected" if r.get("expected") else "failed"] += 1
    return {
        "run": len(log), "failed": len(log.failed), "expected": len(log.expected),
        "per_check": dict(sorted(per_check.items())),
    }  # fmt: skip


def _tally(counts: dict[str, Any], run: str) -> str:
    """``3 checks run, 1 failed`` and, where the tests caught failures themselves, how many."""
    text = f"{counts['run']} {run}, {counts['failed']} failed"
    if counts["expected"]:
        text += f", {counts['expected']} failed as the test expected (caught in the test, or xfail)"
    return text


def _write_report(path: Path, log: CheckLog) -> None:
    from torchscope import __version__

    data = {"torchscope": __version__, "summary": _summary(log), "checks": log.records}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_SESSION_KEY, None)
    if state is None or _is_worker(config):
        return
    path = config.getoption("torchscope_report")
    if not len(state.log) and not path:
        return
    summary = _summary(state.log)
    terminalreporter.section("torchscope")
    terminalreporter.write_line(_tally(summary, "checks run"))
    for name, counts in summary["per_check"].items():
        terminalreporter.write_line(f"  {name}: {_tally(counts, 'run')}")
    # A check that failed inside pytest.raises (or an xfail test) was expected: not listed as failed.
    failed: dict[tuple[str, str], int] = {}
    causes: dict[tuple[str, str], dict[tuple[str, str, str], dict[str, Any]]] = {}
    for r in state.log.failed:
        if r["test"] in state.failed_tests:
            key = (r["test"], r["check"])
            failed[key] = failed.get(key, 0) + 1
            for g in (r.get("report") or {}).get("groups") or []:
                causes.setdefault(key, {}).setdefault((g["kind"], g["cause"], g.get("fix") or ""), g)
    if failed:
        terminalreporter.write_line("failed checks in failing tests:")
    for (test, check), n in list(failed.items())[:MAX_FAILED_LINES]:
        terminalreporter.write_line(f"  {test}: {check}" + (f" (x{n})" if n > 1 else ""))
        for line in _cause_lines(list(causes.get((test, check), {}).values())):
            terminalreporter.write_line(line)
    if len(failed) > MAX_FAILED_LINES:
        terminalreporter.write_line(f"  ... and {len(failed) - MAX_FAILED_LINES} more (see --torchscope-report)")
    if path:
        terminalreporter.write_line(f"report written to {path}")


def _cause_lines(groups: list[dict[str, Any]]) -> list[str]:
    """Each cause of a failed check once: how many tensors, a few names, the cause, the one fix."""
    lines = []
    for g in groups[:MAX_CAUSES]:
        names = g["names"]
        few = ", ".join(names[:FEW_NAMES]) + (f" and {len(names) - FEW_NAMES} more" if len(names) > FEW_NAMES else "")
        cause, _, how = g["cause"].partition("; ")  # causes read "what happened; how to fix it"
        lines.append(f"    {g['count']} {g['kind']} ({few}): {cause}")
        if g.get("fix") or how:
            lines.append(f"      fix: {g.get('fix') or how}")
    if len(groups) > MAX_CAUSES:
        lines.append(f"    ... and {len(groups) - MAX_CAUSES} more causes")
    return lines


def _seeded(seed: int) -> Iterator[int]:
    import random

    import torch

    from torchscope._state import rng_state, set_rng_state

    saved = rng_state()
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is optional
        pass
    try:
        yield seed
    finally:
        set_rng_state(saved)


@pytest.fixture
def torchscope_seed(request: pytest.FixtureRequest) -> Iterator[int]:
    """Seed torch, random and numpy (0, or the marker's ``seed=``); restore the RNG state after.

    >>> def test_init_is_reproducible(torchscope_seed):  # doctest: +SKIP
    ...     assert torchscope_seed == 0
    """
    marker = request.node.get_closest_marker("torchscope")
    seed = DEFAULT_SEED
    if marker is not None and "seed" in marker.kwargs:
        seed = marker.kwargs["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool):
            pytest.fail(f"@pytest.mark.torchscope(seed={seed!r}): seed must be an int, e.g. seed=0", pytrace=False)
    yield from _seeded(seed)


@pytest.fixture(autouse=True)
def _torchscope_marker(request: pytest.FixtureRequest) -> None:
    # The marker selects the seed fixture; unmarked tests pay one marker lookup.
    if request.node.get_closest_marker("torchscope") is not None:
        request.getfixturevalue("torchscope_seed")


@pytest.fixture
def torchscope_report(request: pytest.FixtureRequest) -> Iterator[CheckLog]:
    """The records of the torchscope checks run in this test (see :class:`CheckLog`).

    >>> def test_step(model, step, torchscope_report):  # doctest: +SKIP
    ...     assert_step_ok(model, step)
    ...     assert torchscope_report.checks == ["assert_step_ok"]
    """
    log = CheckLog()
    state = request.config.stash.get(_SESSION_KEY, None)
    if state is None:  # pragma: no cover - the plugin configured this config
        yield log
        return
    state.listeners.append(log)
    try:
        yield log
    finally:
        state.listeners.remove(log)
