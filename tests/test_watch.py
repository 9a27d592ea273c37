"""torchscope.watch: TensorBoard logging every N optimizer steps, read back with TensorBoard's reader."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from zoo import build

import torchscope
from torchscope import capture_state
from torchscope.errors import TorchscopeError

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    HISTOGRAMS,
    SCALARS,
    EventAccumulator,
)
from torch.utils.tensorboard import SummaryWriter


def read_events(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={SCALARS: 0, HISTOGRAMS: 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, record: list[dict[str, Any]] | None = None) -> None:
    """Plain training steps; ``record`` gets, per step, what the test expects to be logged."""
    torch.manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 4)
        act = torch.relu(model[0](x)).detach()  # type: ignore[index]
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 3, (16,)))
        opt.zero_grad()
        loss.backward()
        if record is not None:
            g0 = torch.cat([model[0].weight.grad.reshape(-1), model[0].bias.grad.reshape(-1)])  # type: ignore[index,union-attr]
            p0 = torch.cat([model[0].weight.reshape(-1), model[0].bias.reshape(-1)]).detach().clone()  # type: ignore[index]
            w2 = model[2].weight.detach().clone()  # type: ignore[index]
        opt.step()
        if record is not None:
            p0_after = torch.cat([model[0].weight.reshape(-1), model[0].bias.reshape(-1)]).detach()  # type: ignore[index]
            record.append(
                {
                    "grad_norm_0": g0.norm().item(),
                    "update_ratio_0": ((p0_after - p0).norm() / p0.norm()).item(),
                    "act_mean": act.mean().item(),
                    "act_zero": (act == 0).float().mean().item(),
                    "w2_after": model[2].weight.detach().clone(),  # type: ignore[index]
                    "w2_before": w2,
                }
            )


def test_logs_every_n_steps_with_values_a_user_can_check(tmp_path: Path) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    record: list[dict[str, Any]] = []
    with SummaryWriter(str(tmp_path)) as writer, torchscope.watch(model, writer, every=2, modules="1") as w:
        train(model, opt, 5, record)
    assert w.logged_steps == [0, 2, 4]
    assert w.step == 5

    acc = read_events(tmp_path)
    tags = acc.Tags()
    assert set(tags["scalars"]) == {
        "grad_norm/0",
        "grad_norm/2",
        "grad_norm/total",
        "update_ratio/0",
        "update_ratio/2",
        "activation/1/mean",
        "activation/1/std",
        "activation/1/zero_frac",
        "activation/1/abs_max",
    }
    assert set(tags["histograms"]) == {f"{kind}/{p}" for kind in ("param", "grad") for p in
                                       ("0.weight", "0.bias", "2.weight", "2.bias")}

    grad_norm = scalars(acc, "grad_norm/0")
    assert sorted(grad_norm) == [0, 2, 4]
    for step in (0, 2, 4):
        assert grad_norm[step] == pytest.approx(record[step]["grad_norm_0"], rel=1e-5)
        assert scalars(acc, "update_ratio/0")[step] == pytest.approx(record[step]["update_ratio_0"], rel=1e-4)
        assert scalars(acc, "activation/1/mean")[step] == pytest.approx(record[step]["act_mean"], rel=1e-5)
        assert scalars(acc, "activation/1/zero_frac")[step] == pytest.approx(record[step]["act_zero"], rel=1e-5)
    total = scalars(acc, "grad_norm/total")[0]
    assert total >= grad_norm[0]

    # The param histogram is taken after the step; it covers every element.
    hist = {e.step: e.histogram_value for e in acc.Histograms("param/2.weight")}
    w2 = record[2]["w2_after"]
    assert hist[2].num == w2.numel() == 24
    assert hist[2].min == pytest.approx(w2.min().item(), rel=1e-5)
    assert hist[2].max == pytest.approx(w2.max().item(), rel=1e-5)
    assert hist[2].sum == pytest.approx(w2.sum().item(), rel=1e-4, abs=1e-5)
    assert sum(hist[2].bucket) == 24


def test_frozen_params_get_no_histograms_or_grad_norms(tmp_path: Path) -> None:
    model = mlp()
    torchscope.freeze(model, "0")
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with SummaryWriter(str(tmp_path)) as writer, torchscope.watch(model, writer, every=1, modules=[]):
        train(model, opt, 2)
    tags = read_events(tmp_path).Tags()
    assert "grad_norm/0" not in tags["scalars"] and "grad_norm/2" in tags["scalars"]
    assert "param/0.weight" not in tags["histograms"] and "param/2.weight" in tags["histograms"]
    assert not any(t.startswith("activation/") for t in tags["scalars"])


def test_close_removes_every_hook_and_later_steps_log_nothing(tmp_path: Path) -> None:
    from torch.optim import optimizer as optim_mod

    model, x = build("small_cnn")
    before = capture_state(model)
    n_pre = len(optim_mod._global_optimizer_pre_hooks)
    n_post = len(optim_mod._global_optimizer_post_hooks)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with SummaryWriter(str(tmp_path)) as writer:
        w = torchscope.watch(model, writer, every=1)
        assert len(optim_mod._global_optimizer_pre_hooks) == n_pre + 1
        model(x).sum().backward()
        opt.step()
        w.close()
        w.close()  # idempotent
        assert w.closed
        opt.zero_grad(set_to_none=True)
        model(x).sum().backward()
        opt.step()
    assert w.logged_steps == [0]
    assert len(optim_mod._global_optimizer_pre_hooks) == n_pre
    assert len(optim_mod._global_optimizer_post_hooks) == n_post
    after = capture_state(model)
    assert [d for d in before.differences(after) if d.startswith("hooks")] == []
    assert set(read_events(tmp_path).Tags()["scalars"]) >= {"grad_norm/backbone.0", "grad_norm/fc"}


def test_hooks_removed_when_the_training_loop_raises(tmp_path: Path) -> None:
    model = mlp()
    hooks_before = capture_state(model).hooks
    with SummaryWriter(str(tmp_path)) as writer, pytest.raises(RuntimeError, match="boom"):
        with torchscope.watch(model, writer, every=1):
            raise RuntimeError("boom")
    assert capture_state(model).hooks == hooks_before


def test_one_host_transfer_per_logged_step_and_none_in_between(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = {"tolist": 0, "item": 0, "cpu": 0, "numpy": 0}
    originals = {name: getattr(torch.Tensor, name) for name in calls}

    def counting(name: str) -> Any:
        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return originals[name](self, *args, **kwargs)

        return wrapper

    torch.manual_seed(0)
    batches = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(6)]
    with SummaryWriter(str(tmp_path)) as writer, torchscope.watch(model, writer, every=3) as w:
        for name in calls:
            monkeypatch.setattr(torch.Tensor, name, counting(name))
        for x, y in batches:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        monkeypatch.undo()
    assert w.logged_steps == [0, 3]
    assert calls == {"tolist": 2, "item": 0, "cpu": 0, "numpy": 0}


def test_counts_only_optimizers_that_hold_the_model(tmp_path: Path) -> None:
    model = mlp()
    other = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1)
    with SummaryWriter(str(tmp_path)) as writer, torchscope.watch(model, writer, every=2) as w:
        for _ in range(3):
            other(torch.randn(1, 2)).sum().backward()
            other_opt.step()
        train(model, opt, 3)
    assert w.step == 3
    assert w.logged_steps == [0, 2]


def test_explicit_optimizer_and_shared_module_called_twice(tmp_path: Path) -> None:
    model, x = build("shared_child")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        first = model.block(x)
        second = model.block(torch.relu(first))
    with SummaryWriter(str(tmp_path)) as writer, torchscope.watch(
        model, writer, every=1, modules="block", optimizer=opt
    ) as w:
        model(x).sum().backward()
        opt.step()
    assert w.logged_steps == [0]
    # the shared Linear runs twice per forward; the logged stats average both calls
    logged = scalars(read_events(tmp_path), "activation/block/mean")[0]
    assert logged == pytest.approx(((first.mean() + second.mean()) / 2).item(), rel=1e-5)
    assert logged != pytest.approx(first.mean().item(), rel=1e-3)


def test_nonfinite_grads_are_logged_without_crashing(tmp_path: Path) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    model(torch.randn(2, 4)).sum().backward()
    model[0].weight.grad[0, 0] = float("nan")  # type: ignore[index]
    with SummaryWriter(str(tmp_path)) as writer, torchscope.watch(model, writer, every=1):
        opt.step()
    acc = read_events(tmp_path)
    assert math.isnan(scalars(acc, "grad_norm/0")[0])
    hist = acc.Histograms("grad/0.weight")[0].histogram_value
    assert hist.num == 31  # 32 elements, one NaN left out of the histogram


def test_bad_arguments_name_the_value_and_the_fix(tmp_path: Path) -> None:
    model = mlp()
    with SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(TorchscopeError, match=r"every=0 must be an integer >= 1"):
            torchscope.watch(model, writer, every=0)
        with pytest.raises(TorchscopeError, match=r"pattern 'layer9' matches no module"):
            torchscope.watch(model, writer, modules="layer9")
    with pytest.raises(TorchscopeError, match=r"writer object has no add_scalar\(\); pass a .*SummaryWriter"):
        torchscope.watch(model, object())
    # a failed watch leaves no hook behind
    assert all(not m._forward_hooks for m in model.modules())


def test_without_update_ratios_or_histograms(tmp_path: Path) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with SummaryWriter(str(tmp_path)) as writer, torchscope.watch(
        model, writer, every=1, modules=[], update_ratios=False, histograms=False
    ) as w:
        train(model, opt, 2)
    assert w.logged_steps == [0, 1]
    tags = read_events(tmp_path).Tags()
    assert set(tags["scalars"]) == {"grad_norm/0", "grad_norm/2", "grad_norm/total"}
    assert tags["histograms"] == []
