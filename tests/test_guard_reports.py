"""A guard in a long run keeps a bounded set of reports: the latest ones, and the check where each
violation was first seen, however many steps the run takes."""

from __future__ import annotations

import torch
from torch import nn

import torchscope
from torchscope._guard.core import KEEP_RECENT


def tiny_loop(steps: int, *, drift_from: int | None = None) -> torchscope.FreezeGuard:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    torchscope.freeze(model, "0.*")
    opt = torch.optim.SGD(model[1].parameters(), lr=0.1)
    x = torch.randn(8, 4)
    with torchscope.guard(model, optimizer=opt, fail_fast=False) as g:
        for step in range(1, steps + 1):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
            if drift_from is not None and step == drift_from - 1:
                with torch.no_grad():  # a write outside the optimizer, seen at the next check
                    model[0].weight.mul_(0.5)
    return g


def test_a_long_clean_run_keeps_the_latest_reports_and_counts_every_check() -> None:
    g = tiny_loop(KEEP_RECENT + 150)
    assert g.checks == KEEP_RECENT + 151  # every step, and one on leaving the block
    assert len(g.reports) == KEEP_RECENT
    assert all(r.ok for r in g.reports)
    assert [r.guard_step for r in g.reports][-2:] == [KEEP_RECENT + 150, KEEP_RECENT + 150]
    assert f"{KEEP_RECENT + 151} checks" in repr(g)


def test_the_check_that_first_saw_a_change_is_kept_after_it_leaves_the_latest() -> None:
    g = tiny_loop(KEEP_RECENT + 150, drift_from=10)
    assert len(g.reports) == KEEP_RECENT + 1  # the latest, and the first sight
    first = g.reports[0]
    assert not first.ok
    (change,) = first.by_kind("frozen_param_changed")
    assert change.name == "0.weight" and change.step == 10  # written after step 9's check
    assert first.guard_step == 10
    assert g.reports[1].guard_step == g.checks - KEEP_RECENT + 1  # then the latest, in order
    assert all(not r.ok for r in g.reports)
