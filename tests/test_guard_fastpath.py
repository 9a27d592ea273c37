"""The guard's fast path (``content="sweep"``): frozen params outside the optimizer are read by their
version counter, memory address and a sample at every check and in full by a rotating sweep, yet
every bug of a real loop is still caught at the step it happens, a write that leaves no mark is
found within ``sweep_checks`` checks with the steps it happened between, and the last check reads
everything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_guard as plain_loop
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from torch import nn
from zoo import SmallCNN

import torchscope
from torchscope._guard import sweep as sweep_module
from torchscope.errors import FreezeCheckError, TorchscopeError
from torchscope.render.check import render_check

K = 4  # sweep_checks of these tests: every frozen byte is read within 4 checks


frozen_cnn = plain_loop.frozen_cnn


def step(model: nn.Module, opt: torch.optim.Optimizer, *, set_to_none: bool = True) -> None:
    plain_loop.train(model, opt, 1, set_to_none=set_to_none)


def head_opt(model: SmallCNN) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.fc.parameters(), lr=0.1)


def moved(report: Any) -> list[Any]:
    return [*report.by_kind("frozen_param_changed"), *report.by_kind("frozen_buffer_changed")]


# -- the bugs of a plain loop, with the sweep on --------------------------------------------------

BUGS: list[Callable[[], None]] = [
    plain_loop.test_weight_decay_through_a_zeroed_grad,
    plain_loop.test_freezing_after_backward_leaves_a_stale_grad,
    plain_loop.test_batchnorm_in_train_mode_drifts,
    plain_loop.test_tied_weights_undo_a_freeze,
    plain_loop.test_requires_grad_switched_back_on_mid_run,
    plain_loop.test_a_replaced_module_is_caught_by_name,
    plain_loop.test_optimizer_built_before_the_freeze_keeps_momentum,
    plain_loop.test_written_outside_the_optimizer,
]


@pytest.mark.parametrize("bug", BUGS, ids=[b.__name__.removeprefix("test_") for b in BUGS])
def test_every_plain_loop_bug_is_caught_at_its_step_with_the_sweep_on(
    bug: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain-loop tests, unchanged in what they assert, with a budget so small that every guard
    over a frozen param outside the optimizer sweeps (the test models are otherwise read whole)."""
    monkeypatch.setattr(sweep_module, "SWEEP_BYTES", 64)
    sweeps: list[sweep_module.ColdSweep] = []
    real_init = sweep_module.ColdSweep.__init__

    def spy(self: sweep_module.ColdSweep, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        sweeps.append(self)

    monkeypatch.setattr(sweep_module.ColdSweep, "__init__", spy)
    bug()
    if bug in (plain_loop.test_batchnorm_in_train_mode_drifts, plain_loop.test_written_outside_the_optimizer):
        assert sweeps and all(s.checks > 1 for s in sweeps)  # these guards really swept


def test_a_whole_tensor_written_through_data_is_caught_at_that_step() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=K):
            step(model, opt)
            step(model, opt)
            model.backbone[3].weight.data.mul_(0.5)  # .data: no version bump
            step(model, opt)
    (v,) = moved(info.value.report)
    assert (v.name, v.step, v.found_by, v.since_step) == ("backbone.3.weight", 3, "sample", None)


def test_a_fused_optimizer_the_guard_was_not_given_is_caught_by_the_sample() -> None:
    """A second, fused optimizer steps frozen params without bumping their version counters: its
    weight decay moves every element, so the sample sees it at once."""
    model = frozen_cnn()
    opt = head_opt(model)
    other = torch.optim.AdamW(model.backbone[0].parameters(), lr=0.1, weight_decay=0.1, fused=True)
    for p in model.backbone[0].parameters():
        p.grad = torch.zeros_like(p)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=K):
            step(model, opt)
            versions = [p._version for p in model.backbone[0].parameters()]
            other.step()
            assert [p._version for p in model.backbone[0].parameters()] == versions  # no mark left
            step(model, opt)
    found = moved(info.value.report)
    assert {v.name for v in found} == {"backbone.0.weight", "backbone.0.bias"}
    assert {(v.step, v.found_by) for v in found} == {(2, "sample")}


def test_fused_adamw_decay_on_a_frozen_param_it_holds_is_caught_at_the_step() -> None:
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1, fused=True)
    step(model, opt)  # every param has a grad tensor now
    torchscope.freeze(model, "backbone.*")
    model.backbone.eval()
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=K):
            step(model, opt, set_to_none=False)  # zeroed, not cleared: the decay still acts
    found = info.value.report.by_kind("frozen_param_changed")
    assert found and {(v.step, v.found_by) for v in found} == {(1, "full")}  # held by the optimizer: read in full


def test_batchnorm_running_stats_are_caught_at_the_step() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=K):
            step(model, opt)
            model.train()  # the frozen BatchNorm trains too: its update bumps no version counter
            step(model, opt)
    found = info.value.report.by_kind("frozen_buffer_changed")
    assert {v.name for v in found} >= {"backbone.1.running_mean", "backbone.4.running_var"}
    assert {(v.step, v.found_by) for v in found} == {(2, "full")}


def test_a_version_bump_without_a_change_is_no_violation() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    w = model.backbone[0].weight
    with torchscope.guard(model, optimizer=opt, sweep_checks=K) as g:
        step(model, opt)
        with torch.no_grad():
            w.add_(0)  # bumps the version counter, changes nothing
            model.backbone[3].weight.copy_(model.backbone[3].weight.clone())
        step(model, opt)
        step(model, opt)
    assert all(r.ok for r in g.reports) and len(g.reports) == 4


def test_a_new_tensor_behind_data_is_caught_at_the_step() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    w = model.backbone[3].weight
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=K):
            step(model, opt)
            new = w.detach().clone()
            new[0, 0, 0, 0] += 1.0  # one element only: the sample would miss it
            w.data = new  # the same Parameter object, its values in other memory
            step(model, opt)
    (v,) = moved(info.value.report)
    assert (v.name, v.step, v.found_by) == ("backbone.3.weight", 2, "storage")


def _single_write_run(write_at: int, which: int, where: float, steps: int) -> tuple[Any, int]:
    """A frozen backbone, one element written through ``.data`` just before step ``write_at``;
    (the first report that found it, the index written)."""
    model = frozen_cnn()
    opt = head_opt(model)
    params = list(model.backbone.parameters())
    p = params[which % len(params)]
    index = min(p.numel() - 1, int(where * p.numel()))
    with torchscope.guard(model, optimizer=opt, sweep_checks=K, fail_fast=False) as g:
        for s in range(1, steps + 1):
            if s == write_at:
                p.data.view(-1)[index] += 1.0
            step(model, opt)
    first = next(r for r in g.reports if not r.ok)
    return first, index


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(write_at=st.integers(1, 6), which=st.integers(0, 7), where=st.floats(0, 1))
def test_any_single_element_write_is_found_within_k_checks_with_its_range(write_at: int, which: int,
                                                                          where: float) -> None:  # fmt: skip
    first, _ = _single_write_run(write_at, which, where, steps=write_at + K + 1)
    (v,) = moved(first)
    assert write_at <= v.step <= write_at + K - 1  # found within K checks of the write
    if v.step > write_at:  # found later than it happened: the range names the step it happened at
        assert v.since_step is not None and v.since_step < write_at
    else:
        assert v.since_step is None or v.since_step < write_at
    assert v.found_by in ("sweep", "sample")


def test_a_late_find_names_the_steps_it_happened_between() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=8) as g:
            for s in range(1, 12):
                if s == 2:
                    model.backbone[0].weight.data.view(-1)[5] += 1.0  # leaves no mark but the bytes
                step(model, opt)
    (v,) = moved(info.value.report)
    assert v.found_by == "sweep" and v.since_step is not None and v.since_step < 2 <= v.step <= 9
    text = str(info.value)
    assert f"{v.since_step + 1}-{v.step}" in text  # the step column: the steps it happened in
    assert any("rotating sweep" in c for c in g.reports[0].caveats)
    console = Console(width=200, color_system=None, record=True)
    console.print(render_check(info.value.report, title="guard"))
    panel = " ".join(console.export_text().replace("│", " ").split())
    assert f"between steps {v.since_step + 1} and {v.step} (found by the rotating sweep)" in panel


def test_the_last_check_reads_everything() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=64) as g:
            step(model, opt)
            model.backbone[3].weight.data.view(-1)[100] += 1.0
    (v,) = moved(info.value.report)
    assert (v.step, v.found_by) == (1, "final")
    assert g.reports[0].ok and not any("rotating sweep" in c for c in info.value.report.caveats)


def test_an_explicit_check_reads_everything() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    g = torchscope.guard(model, optimizer=opt, sweep_checks=64, fail_fast=False)
    step(model, opt)
    model.backbone[0].weight.data.view(-1)[7] += 1.0
    (v,) = moved(g.check())
    assert v.found_by == "final"
    g.close(check=False)


def test_every_step_content_reads_every_byte_at_every_check() -> None:
    model = frozen_cnn()
    opt = head_opt(model)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, content="every-step", sweep_checks=K) as g:
            step(model, opt)
            model.backbone[0].weight.data.view(-1)[7] += 1.0
            step(model, opt)
    (v,) = moved(info.value.report)
    assert (v.step, v.found_by, v.since_step) == (2, "full", None)
    assert g.sweep is None


def test_small_frozen_weights_are_read_whole_at_every_check() -> None:
    """Without sweep_checks, frozen weights that fit one check's budget are read whole every check."""
    model = frozen_cnn()
    g = torchscope.guard(model, optimizer=head_opt(model))
    assert g.sweep is None
    g.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"content": "bits"}, "content='bits' is not 'sweep' or 'every-step'"),
     ({"sweep_checks": 0}, "sweep_checks=0 must be None"),
     ({"sweep_checks": True}, "sweep_checks=True must be None")],
)  # fmt: skip
def test_bad_content_settings_name_the_value(kwargs: dict, match: str) -> None:
    with pytest.raises(TorchscopeError, match=match):
        torchscope.guard(frozen_cnn(), **kwargs)


def test_an_inference_mode_tensor_is_read_in_full() -> None:
    """A frozen param made under inference_mode keeps no version counter: no mark to trust."""
    model = frozen_cnn()
    with torch.inference_mode():
        weight = model.backbone[0].weight.detach().clone()
    model.backbone[0].weight = nn.Parameter(weight, requires_grad=False)
    opt = head_opt(model)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt, sweep_checks=K) as g:
            assert g.sweep is not None and g.sweep.rest  # the one without a counter
            step(model, opt)
            with torch.inference_mode():
                weight.view(-1)[3] += 1.0  # no version counter moves
            step(model, opt)
    (v,) = moved(info.value.report)
    assert (v.name, v.step, v.found_by) == ("backbone.0.weight", 2, "full")


def test_a_flag_switched_back_on_is_explained_once() -> None:
    model = frozen_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FreezeCheckError) as info:
        with torchscope.guard(model, optimizer=opt):
            step(model, opt)
            model.requires_grad_(True)
            step(model, opt)
    message = str(info.value)
    assert message.count("find what switched it on") == 1
    assert message.count("fix (all") == 1  # torchscope.freeze(...), under requires_grad_changed
    assert "requires_grad_changed says what to look for" in message


# -- sharded (DTensor) params: read in full, on the rank that holds them ----------------------------


def _guard_worker(rank: int, port: int, out_dir: str) -> None:
    import json
    import os
    from pathlib import Path

    import torch.distributed as dist
    from test_distributed import sharded_mlp

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model, opt = sharded_mlp()
        torch.manual_seed(rank)
        found: dict[str, Any] = {}
        g = torchscope.guard(model, optimizer=opt, sweep_checks=K, fail_fast=False)
        found["swept"] = 0 if g.sweep is None else len(g.sweep.cold)
        for s in range(1, 4):
            opt.zero_grad()
            model(torch.randn(4, 16)).square().mean().backward()
            if s == 2 and rank == 1:  # only rank 1 holds this shard, and only rank 1 writes to it
                model[0].weight.to_local().data.view(-1)[0] += 1.0  # one element, no version bump
            opt.step()
        g.close(check=False)
        found["violations"] = [(v.name, v.step, v.found_by) for r in g.reports for v in r.violations][:1]
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(found))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_sharded_frozen_params_are_read_in_full_on_each_rank(tmp_path: Any) -> None:
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    mp.spawn(_guard_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert rank0["swept"] == rank1["swept"] == 0  # the frozen layer's weight and bias: DTensors, never swept
    assert rank0["violations"] == []  # rank 0's shard did not change
    assert rank1["violations"] == [["0.weight", 2, "full"]]  # caught at the step, on the rank that holds it


def test_a_freed_storage_is_never_read_in_place() -> None:
    """Sharding code frees a param's memory by resizing its storage to nothing: the guard must not
    read where the values were (it would read freed memory); it reads the tensor as torch sees it."""
    model = frozen_cnn()
    opt = head_opt(model)
    g = torchscope.guard(model, optimizer=opt, sweep_checks=K, fail_fast=False)
    step(model, opt)
    weight = model.backbone[3].weight
    reader = next(c.reader for c in g.sweep.cold if c.name == "backbone.3.weight")  # type: ignore[union-attr]
    assert reader.same_memory(weight)
    weight.untyped_storage().resize_(0)
    assert not reader.same_memory(weight)
    g.remove()
