"""One result protocol: every result's to_dict()/from_dict() round-trip exactly, through JSON, with a
schema version, from real small runs and from hypothesis strategies built from the types' own hints;
fingerprints carry their algorithm id."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from zoo import build

import torchscope
from torchscope import (
    ActivationReport,
    BenchResult,
    DiffReport,
    GradReport,
    MemoryReport,
    ModuleTree,
    ParamStats,
    ReportData,
    StepCheck,
    Summary,
    TorchscopeError,
)
from torchscope._checkparts.config import OPTIMIZERS, ReferenceStep
from torchscope._checkparts.report import Violation, ViolationGroup
from torchscope._diff import NONFINITE, STATUSES, TensorDiff
from torchscope._fingerprint import ALGORITHMS, Fingerprint
from torchscope._grads import LayerGrad
from torchscope._record import ActivationCall
from torchscope._result import Result
from torchscope._stats import ParamRow
from torchscope._treedata import FREEZE_STATES, ModuleEntry

#: Every result a public function returns, and its schema.
RESULTS: dict[type, str] = {
    Summary: "torchscope.summary/1",
    ModuleTree: "torchscope.tree/1",
    StepCheck: "torchscope.check/1",
    ActivationReport: "torchscope.activations/1",
    GradReport: "torchscope.grads/1",
    ParamStats: "torchscope.stats/1",
    DiffReport: "torchscope.diff/1",
    MemoryReport: "torchscope.memory/1",
    BenchResult: "torchscope.bench/1",
    ReportData: "torchscope.report/2",
}


def through_json(result: Result) -> Any:
    """What a user gets back from a saved file: strict JSON (no NaN/Infinity tokens) read back."""
    d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    return type(result).from_dict(d)


# --- from real small runs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> dict[type, Result]:
    model, x = build("small_cnn")
    torchscope.freeze(model, "backbone")
    out: dict[type, Result] = {}
    out[Summary] = torchscope.summary(model, input_data=x, verbose=0)
    out[ModuleTree] = torchscope.tree(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)

    def step() -> None:
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

    out[StepCheck] = torchscope.check_step(model, step, optimizer=opt, mode="fingerprint")
    with torchscope.record(model) as rec:
        model(x)
    out[ActivationReport] = rec.report()
    out[GradReport] = torchscope.grad_report(model, input_data=x)
    out[ParamStats] = torchscope.param_stats(model)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    changed = {k: (v + 1 if v.is_floating_point() else v) for k, v in sd.items()}
    changed["backbone.0.weight"][0, 0, 0, 0] = float("nan")
    out[DiffReport] = torchscope.diff_checkpoints(sd, changed, expect_frozen=["backbone.*"])
    out[MemoryReport] = torchscope.estimate_memory(model, x)
    out[ReportData] = torchscope.collect_report(model, input_data=x)
    out[BenchResult] = torchscope.bench(
        model, mode="frozen", num_classes=10, device="cpu", batch_size=2, image_size=8, steps=1, windows=1, warmup=1
    )
    return out


@pytest.mark.parametrize("cls", list(RESULTS), ids=lambda c: c.__name__)
def test_a_real_result_round_trips_exactly_through_json(real: dict[type, Result], cls: type) -> None:
    result = real[cls]
    d = result.to_dict()
    assert d["schema"] == RESULTS[cls]
    assert through_json(result) == result
    # and the JSON of the copy is the JSON of the original, key for key
    assert through_json(result).to_dict() == json.loads(json.dumps(d, allow_nan=False))


def test_every_public_result_type_is_covered() -> None:
    public = {getattr(torchscope, n) for n in torchscope.__all__ if isinstance(getattr(torchscope, n), type)}
    assert {c for c in public if issubclass(c, Result)} == set(RESULTS)
    for cls in RESULTS:
        # repr=False on the dataclass: the result's repr is its table, not the dataclass's own
        assert cls.__repr__ is Result.__repr__, cls


def test_check_results_store_the_fingerprint_algorithm(real: dict[type, Result]) -> None:
    report = real[StepCheck]
    assert isinstance(report, StepCheck)
    assert report.to_dict()["fingerprint"] == ALGORITHMS["weighted"] == "torchscope.weighted/2"


def test_a_nan_survives_the_round_trip_as_a_string(real: dict[type, Result]) -> None:
    diff = real[DiffReport]
    assert isinstance(diff, DiffReport)
    entry = next(t for t in diff.to_dict()["tensors"] if t["name"] == "backbone.0.weight")
    assert entry["nonfinite"] == {"became_nan": 1}
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    stats = torchscope.param_stats(net)
    d = json.loads(json.dumps(stats.to_dict(), allow_nan=False))  # strict JSON: no NaN token
    assert d["rows"][0]["norm"] == "NaN"  # the spelling every --json output uses
    back = ParamStats.from_dict(d)
    assert back.rows[0].norm is not None and math.isnan(back.rows[0].norm)
    assert back.to_dict() == d


# --- schema versions -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(RESULTS), ids=lambda c: c.__name__)
def test_from_dict_refuses_another_major_version_and_another_schema(real: dict[type, Result], cls: type) -> None:
    d = real[cls].to_dict()
    name, _, major = RESULTS[cls].partition("/")
    newer = {**d, "schema": f"{name}/{int(major) + 1}"}
    with pytest.raises(TorchscopeError, match=rf"^{name}/{int(major) + 1} is a newer major version than this torchscope reads"):
        cls.from_dict(newer)
    # a minor version of the same major is read
    assert cls.from_dict({**d, "schema": f"{name}/{major}.7"}) == real[cls]
    with pytest.raises(TorchscopeError, match=rf"^not a {name} result \(schema 'torchscope.other/1'\)"):
        cls.from_dict({**d, "schema": "torchscope.other/1"})
    with pytest.raises(TorchscopeError, match=rf"^not a {name} result: no 'schema' key"):
        cls.from_dict({k: v for k, v in d.items() if k != "schema"})


def test_a_damaged_field_is_one_line_naming_it(real: dict[type, Result]) -> None:
    d = real[GradReport].to_dict()
    with pytest.raises(TorchscopeError, match=r"^field 'trainable' must be an int, got '27'$"):
        GradReport.from_dict({**d, "trainable": "27"})
    with pytest.raises(TorchscopeError, match=r"^not a GradReport dict: missing \['loss'\], unexpected \['los'\]"):
        GradReport.from_dict({**{k: v for k, v in d.items() if k != "loss"}, "los": "ce"})


# --- from strategies built from the types' own hints ----------------------------------------------

FLOATS = st.floats(allow_nan=False, width=64)  # NaN != NaN: the nan string is checked above
#: fields whose values a collector draws from a fixed set (the renderers and derived values rely on it)
FIELDS: dict[tuple[type, str], st.SearchStrategy[Any]] = {
    (TensorDiff, "status"): st.sampled_from(STATUSES),
    (TensorDiff, "nonfinite"): st.dictionaries(st.sampled_from(sorted(NONFINITE)), st.integers(1, 99), max_size=2).map(
        lambda d: tuple(d.items())
    ),
    (ModuleEntry, "freeze"): st.sampled_from(FREEZE_STATES),
}
REFERENCE = st.builds(
    ReferenceStep, optimizer=st.sampled_from(OPTIMIZERS), lr=st.floats(0, 1), momentum=st.floats(0, 0.99),
    weight_decay=st.floats(0, 1), steps=st.integers(1, 5), train_bn=st.booleans(), seed=st.integers(0, 99),
)  # fmt: skip


def strategy(hint: Any, owner: type | None = None, name: str = "") -> st.SearchStrategy[Any]:
    if owner is not None and (owner, name) in FIELDS:
        return FIELDS[(owner, name)]
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return st.one_of(*(strategy(a) for a in get_args(hint)))
    if origin is Literal:
        return st.sampled_from(get_args(hint))
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            if owner is not None and name in getattr(owner, "MAPPINGS", ()):
                # pairs written as a JSON object: keys are unique strings
                _key, value = get_args(args[0])
                return st.dictionaries(st.text(max_size=6), strategy(value), max_size=3).map(lambda d: tuple(d.items()))
            return st.lists(strategy(args[0]), max_size=2).map(tuple)
        return st.tuples(*(strategy(a) for a in args))
    if origin is dict:
        return st.dictionaries(st.text(max_size=6), strategy(get_args(hint)[1]), max_size=3)
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-(2**62), 2**62)
    if hint is float:
        return FLOATS
    if hint is str:
        return st.text(max_size=8)
    if hint is ReferenceStep:
        return REFERENCE
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint.__init__)
        skip = getattr(hint, "SKIP", ())
        kwargs = {
            f.name: strategy(hints[f.name], hint, f.name)
            for f in dataclasses.fields(hint)
            if f.init and f.name not in skip and f.name != "schema"
        }
        return st.builds(hint, **kwargs)
    raise AssertionError(f"no strategy for {hint!r}")  # the test's own gap, not a product check


GENERATED = [c for c in RESULTS if c is not BenchResult]  # bench's config validates every value


@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.__name__)
def test_any_result_round_trips_exactly_through_json(cls: type) -> None:
    # a report nests six results: fewer, larger examples
    @settings(max_examples=10 if cls is ReportData else 30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy(cls))
    def round_trip(result: Result) -> None:
        assert through_json(result) == result

    round_trip()


# --- fingerprints carry their algorithm id -------------------------------------------------------


def test_fingerprints_know_their_algorithm_and_refuse_a_cross_comparison() -> None:
    w = torch.arange(10.0)
    weighted = torchscope.fingerprint(w)
    hashed = torchscope.fingerprint(w, method="hash") if hasattr(torch, "hash_tensor") else None
    assert isinstance(weighted, Fingerprint) and weighted.algorithm == "torchscope.weighted/2"
    assert weighted == torchscope.fingerprint(w.clone())  # same algorithm, same values: equal
    stored = json.loads(json.dumps(weighted.to_dict()))
    assert stored == {"algorithm": "torchscope.weighted/2", "value": int(weighted)}
    assert Fingerprint.from_dict(stored) == weighted
    old = Fingerprint(int(weighted), "torchscope.weighted/1")
    with pytest.raises(
        TorchscopeError,
        match=r"^cannot compare a torchscope.weighted/2 fingerprint with a torchscope.weighted/1 one: their values "
        r"mean different things",
    ):
        _ = weighted == old
    if hashed is not None:
        assert hashed.algorithm == "torch.hash_tensor/1"
        with pytest.raises(TorchscopeError, match="cannot compare"):
            _ = hashed != weighted
    with pytest.raises(TorchscopeError, match=r"a stored fingerprint needs its algorithm id, got 12"):
        Fingerprint.from_dict(12)


def test_a_mapping_of_fingerprints_keeps_the_id() -> None:
    model = nn.Linear(2, 2)
    prints = torchscope.fingerprint(dict(model.named_parameters()))
    assert {p.algorithm for p in prints.values()} == {"torchscope.weighted/2"}
    assert not math.isnan(float(prints["weight"]))


def test_the_old_name_of_the_step_check_still_works_with_one_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"^torchscope.StepReport is now torchscope.StepCheck .*goes in 0.2$"):
        old = torchscope.StepReport
    assert old is StepCheck
    assert "StepReport" not in torchscope.__all__ and "StepCheck" in torchscope.__all__


@pytest.mark.parametrize("part", [Violation, ViolationGroup, TensorDiff, ModuleEntry, ActivationCall, LayerGrad, ParamRow],
                         ids=lambda c: c.__name__)
def test_every_part_of_a_result_round_trips_alone(part: type) -> None:
    # audit_optimizer returns bare Violations: they read back on their own, without a schema
    @settings(max_examples=30, deadline=None)
    @given(strategy(part))
    def round_trip(value: Any) -> None:
        d = json.loads(json.dumps(value.to_dict(), allow_nan=False))
        assert "schema" not in d and part.from_dict(d) == value

    round_trip()
