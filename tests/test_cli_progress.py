"""Long work says how far it is: a bar per phase with the time left, drawn by the CLI on stderr from a
plain ``progress(phase, done, total)`` callback; quiet under --json, off a terminal, and in library
calls that are given no callback."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import Result

import torchscope
from torchscope._report import REPORT_PARTS, collect_report
from torchscope.cli import _output
from torchscope.render.progress import ProgressBar

sys.path.insert(0, str(Path(__file__).parent))
from zoo import SmallCNN

CliRun = Callable[..., Result]
CNN = f"{Path(__file__).parent / 'zoo.py'}:SmallCNN"
Calls = list[tuple[str, int, int]]


def _terminal() -> tuple[Console, io.StringIO]:
    file = io.StringIO()
    return Console(file=file, force_terminal=True, width=120, color_system=None), file


def test_the_bar_shows_the_count_the_time_spent_and_the_time_left() -> None:
    term, file = _terminal()
    with ProgressBar(term) as bar:
        bar("frozen: timing", 1, 4)
        bar("frozen: timing", 2, 4)
    drawn = file.getvalue()
    assert "frozen: timing" in drawn and "2/4" in drawn
    assert "left" in drawn and "0:00:0" in drawn  # elapsed and remaining, h:mm:ss


def test_a_phase_of_unknown_length_shows_no_estimate_and_no_count_of_a_total() -> None:
    term, file = _terminal()
    with ProgressBar(term) as bar:
        bar("warm-up", 3, 0)
    assert "3/?" in file.getvalue()


@pytest.mark.parametrize(("enabled", "terminal", "shown"), [(True, True, True), (True, False, False), (False, True, False)])
def test_the_cli_draws_only_when_asked_and_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, enabled: bool, terminal: bool, shown: bool
) -> None:
    file = io.StringIO()
    monkeypatch.setattr(
        _output, "console", lambda no_color=False, stderr=False: Console(file=file, force_terminal=terminal)
    )
    with _output.progress_shown(enabled) as bar:
        assert isinstance(bar, ProgressBar) is shown and (bar is None) is (not shown)


def test_collect_report_counts_its_six_parts() -> None:
    calls: Calls = []
    collect_report(SmallCNN(), input_size=(2, 3, 8, 8), progress=lambda *a: calls.append(a))
    assert calls == [("report", done, REPORT_PARTS) for done in range(REPORT_PARTS + 1)]


def test_memory_fit_reports_each_trace_of_its_search_and_ends_complete() -> None:
    calls: Calls = []
    report = torchscope.estimate_memory(SmallCNN(), (4, 3, 16, 16), fit="2GiB", progress=lambda *a: calls.append(a))
    assert report.fit is not None and report.fit.batch_size > 0
    assert {phase for phase, _, _ in calls} == {"batch size search"}
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and all(d <= t for _, d, t in calls)
    assert calls[-1][1] == calls[-1][2] == report.fit.traces


def test_library_calls_show_no_progress_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    # in a notebook as in a script: a library call draws nothing, so a cell never fills with bars
    collect_report(SmallCNN(), input_size=(2, 3, 8, 8))
    torchscope.estimate_memory(SmallCNN(), (4, 3, 16, 16), fit="2GiB")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_bench_batch_search_never_makes_more_trials_than_its_bar_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchscope._bench import batchsize
    from torchscope._bench.batchsize import find_batch_size, most_trials

    monkeypatch.setattr(batchsize.gc, "collect", lambda: 0)  # a full collection per fake OOM: minutes

    for start, limit in ((1, 64), (8, 64), (8, 8)):
        for cap in range(1, limit + 1):

            def trial(b: int, cap: int = cap) -> None:
                if b > cap:
                    raise torch.OutOfMemoryError("fake")

            best, trials = find_batch_size(trial, start=start, limit=limit, is_oom=lambda e: True)
            assert best == cap and len(trials) <= most_trials(start, limit)


def test_memory_fit_in_a_terminal_shows_its_search_on_stderr(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _output.console

    def terminal(no_color: bool = False, stderr: bool = False) -> Console:
        return Console(file=sys.stderr, force_terminal=True, width=120) if stderr else real(no_color, stderr)

    monkeypatch.setattr(_output, "console", terminal)
    result = cli("memory", CNN, "--input-size", "3,16,16", "--fit", "2GiB", "--device", "cpu", "--no-color")
    assert result.exit_code == 0, result.output
    assert "batch size search" in result.stderr and "left" in result.stderr
    quiet = cli("memory", CNN, "--input-size", "3,16,16", "--fit", "2GiB", "--device", "cpu", "--json")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_report_off_a_terminal_writes_nothing_to_stderr(cli: CliRun) -> None:
    result = cli("report", CNN, "--input-size", "2,3,8,8", "--no-check", "--no-color")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
