"""torchscope.strategies: tensors, inputs_for, freeze_patterns and small_models draw what they promise."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from torch import nn
from zoo import build

import torchscope
from torchscope.errors import SpecError
from torchscope.strategies import SmallNet, freeze_patterns, inputs_for, small_models, tensors

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(tensors((2, 3), elements=st.floats(-1, 1, width=32)))
def test_tensors_from_elements(t: torch.Tensor) -> None:
    assert t.shape == (2, 3) and t.dtype == torch.float32
    assert bool(t.abs().max() <= 1)


@FAST
@given(tensors(st.tuples(st.integers(1, 3), st.integers(0, 4)), torch.int64, low=-2, high=3))
def test_tensors_int_range_and_shape_strategy(t: torch.Tensor) -> None:
    assert t.dim() == 2 and 1 <= t.shape[0] <= 3 and t.dtype == torch.int64
    if t.numel():
        assert int(t.min()) >= -2 and int(t.max()) < 3


@FAST
@given(tensors((4,), torch.bool), tensors((3, 2), torch.float64))
def test_tensors_bool_and_float64(b: torch.Tensor, f: torch.Tensor) -> None:
    assert b.dtype == torch.bool and f.dtype == torch.float64 and f.shape == (3, 2)


def test_tensors_reach_edge_distributions() -> None:
    zeros = find(tensors((3,)), lambda t: bool((t == 0).all()))
    large = find(tensors((3,)), lambda t: bool(t.abs().max() > 100))
    assert zeros.shape == large.shape == (3,)


def test_tensors_bad_arguments() -> None:
    with pytest.raises(SpecError, match=r"shape=\(2, -1\) must be a tuple of ints >= 0"):
        tensors((2, -1))
    with pytest.raises(SpecError, match=r"dtype=.float. must be a torch\.dtype"):
        tensors((2,), "float")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="low=3 must be < high=3"):
        tensors((2,), torch.long, low=3, high=3)


@pytest.mark.parametrize("name", ["small_cnn", "tied", "shared_child", "aux_head"])
def test_inputs_for_zoo_models_run(name: str) -> None:
    model, _ = build(name)
    model.eval()

    @FAST
    @given(inputs_for(model))
    def run(x: torch.Tensor) -> None:
        assert 2 <= x.shape[0] <= 4
        with torch.no_grad():
            model(x)

    run()


def test_inputs_for_summary_keeps_shapes_and_dict_keys() -> None:
    model, x = build("dict_input")
    s = torchscope.summary(model, input_data=x)

    @FAST
    @given(inputs_for(s, batch_sizes=st.integers(2, 5)))
    def run(batch: dict[str, torch.Tensor]) -> None:
        assert set(batch) == {"image", "tokens"}
        assert batch["image"].shape[1:] == (5,) and batch["tokens"].dtype == torch.int64
        with torch.no_grad():
            model(batch)

    run()


def test_inputs_for_rejects_what_it_cannot_read() -> None:
    with pytest.raises(SpecError, match="cannot tell what input ReLU takes"):
        inputs_for(nn.ReLU())
    with pytest.raises(SpecError, match=r"needs an nn\.Module or a torchscope\.Summary, not int"):
        inputs_for(3)


def test_freeze_patterns_always_freezable() -> None:
    model, _ = build("small_cnn")

    @FAST
    @given(freeze_patterns(model))
    def run(patterns: list[str]) -> None:
        fresh, _ = build("small_cnn")
        changed = torchscope.freeze(fresh, *patterns) if patterns else []
        assert bool(patterns) == bool(changed)
        assert all(not p.requires_grad for n, p in fresh.named_parameters() if n in changed)

    run()
    with pytest.raises(SpecError, match="has no submodule with parameters"):
        freeze_patterns(nn.Sequential(nn.ReLU()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models().flatmap(lambda m: st.tuples(st.just(m), inputs_for(m))))
def test_small_models_forward_and_shapes(pair: tuple[SmallNet, torch.Tensor]) -> None:
    model, x = pair
    out = model(x)
    assert out.shape == (x.shape[0], model.spec.num_classes)
    if model.spec.tied:
        assert model.mirror.weight is model.square.weight
    if model.spec.unused_branch:
        out.sum().backward()
        assert model.unused.weight.grad is None


def test_small_models_space_has_every_feature() -> None:
    assert find(small_models(), lambda m: m.spec.tied and m.spec.shared).square_again is not None
    assert isinstance(find(small_models(("conv",)), lambda m: m.spec.norm == "batchnorm").blocks[0].norm, nn.BatchNorm2d)
    assert isinstance(find(small_models(("mlp",)), lambda m: m.spec.norm == "layernorm").blocks[0].norm, nn.LayerNorm)
    assert find(small_models(), lambda m: m.spec.unused_branch).unused.out_features >= 2


def test_small_models_are_reproducible_and_leave_global_rng() -> None:
    state = torch.get_rng_state()
    # any drawn spec will do: rebuilding it must give the same weights
    a = find(small_models(("mlp",)), lambda m: len(m.spec.widths) >= 1)
    assert torch.equal(torch.get_rng_state(), state)
    from torchscope.strategies import build_small_model

    b = build_small_model(a.spec)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(SpecError, match="each kind must be 'mlp' or 'conv'"):
        small_models(("rnn",))
