"""``@record`` makes the frozen dataclass ``@dataclass(frozen=True, eq=False, repr=False)`` would.

Each check compares a record class with its twin: the same class body under the real decorator
(the summary's data classes, their source re-run with ``@dataclass``; random classes built from
hypothesis' field lists). Fields, signature, binding, defaults, errors, freezing, copies and JSON
must be the same.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import operator
import pickle
import sys
import types
import typing
from dataclasses import FrozenInstanceError, InitVar, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import torchscope
from torchscope._result import Frozen, Record, record
from torchscope._state import ModelState
from torchscope._summary import data


def _twin_module() -> types.ModuleType:
    source = Path(data.__file__).read_text(encoding="utf-8")
    assert source.count("@record\n") == 4
    source = source.replace("@record\n", "@dataclass(frozen=True, eq=False, repr=False)\n")
    source = source.replace("from dataclasses import field\n", "from dataclasses import dataclass, field\n")
    module = types.ModuleType("twin_summary_data")
    sys.modules[module.__name__] = module  # dataclass and get_type_hints look the module up
    exec(compile(source, "twin_summary_data.py", "exec"), module.__dict__)
    return module


TWIN = _twin_module()
NAMES = ["TensorSpec", "ModuleRow", "DisplayOptions", "Summary"]


def twin(cls: type) -> type:
    return getattr(TWIN, cls.__name__)


def run(cls: Any, *args: Any, **kwargs: Any) -> Any:
    """What ``cls(*args, **kwargs)`` gives: ``("ok", vars)`` or ``(exception type, message)``."""
    try:
        obj = cls(*args, **kwargs)
    except Exception as exc:
        return type(exc), str(exc)
    return "ok", list(vars(obj).items())


def small_summary() -> data.Summary:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    return torchscope.summary(model, input_size=(1, 3, 8, 8), verbose=0)


# --- the summary's classes and their twins -------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_record_has_the_dataclass_fields_signature_and_hints(name: str) -> None:
    cls, other = getattr(data, name), getattr(TWIN, name)
    assert dataclasses.is_dataclass(cls)
    # a Field's repr holds every attribute (name, type, default, factory, init, repr, compare, kw_only)
    assert [repr(f) for f in dataclasses.fields(cls)] == [repr(f) for f in dataclasses.fields(other)]
    assert cls.__match_args__ == other.__match_args__
    assert str(inspect.signature(cls)) == str(inspect.signature(other))
    assert inspect.signature(cls) == inspect.signature(other)
    # hints read from __init__ resolve in the defining module (the public class's __module__ is renamed)
    assert str(typing.get_type_hints(cls.__init__)) == str(typing.get_type_hints(other.__init__)).replace(
        "twin_summary_data", "torchscope._summary.data"
    )
    assert cls.__init__.__qualname__ == f"{name}.__init__"


def test_the_public_summary_class_still_reads_its_hints() -> None:
    assert torchscope.Summary.__module__ == "torchscope"  # renamed for users' reprs and pickles
    hints = typing.get_type_hints(torchscope.Summary.__init__)
    assert hints["rows"] == tuple[data.ModuleRow, ...]
    assert hints["display"] == data.DisplayOptions | None


def test_the_model_state_record_matches_a_frozen_dataclass() -> None:
    @dataclass(frozen=True, eq=False, repr=False)
    class ModelStateTwin(Frozen):
        tensors: dict[str, torch.Tensor]
        grads: dict[str, torch.Tensor | None]
        requires_grad: dict[str, bool]
        training: dict[str, bool]
        hooks: dict[str, dict[str, tuple[Any, ...]]]
        devices: dict[str, str]

    assert [(f.name, f.type) for f in dataclasses.fields(ModelState)] == [
        (f.name, f.type) for f in dataclasses.fields(ModelStateTwin)
    ]
    state = torchscope.capture_state(nn.Linear(2, 2))
    assert isinstance(state, ModelState)
    assert state.differences(dataclasses.replace(state)) == []
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'tensors'"):
        state.tensors = {}  # type: ignore[misc]


ROW = ("a.b", "Conv2d", 2, 0, (), (), 10, 8, 5, ())


def calls(cls_name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Argument lists for a class: right ones and every kind of wrong one."""
    if cls_name == "TensorSpec":
        return [
            (("x", (1,), "f"), {}), (("x", (1,)), {"dtype": "f"}), ((), {"dtype": "f", "shape": (), "name": "n"}),
            (("x",), {}), ((), {}), (("x", (1,), "f", 4), {}), (("x", (1,), "f"), {"name": "y"}),
            (("x", (1,), "f"), {"color": 1}), (("x",), {"color": 1, "name": "y"}), (("x",), {"self": 1}),
            (("x", (1,), "f", 4), {"color": 1}), (("x", (1,), "f", 4, 5), {"name": 1}),
        ]  # fmt: skip
    if cls_name == "ModuleRow":
        return [
            (ROW, {}), ((*ROW, False, (3, 3), 1), {"opaque": True, "weights": ()}), (ROW, {"groups": 2}),
            ((*ROW, True, None, None, False, (), 1), {}), (ROW[:3], {}), (ROW[:3], {"params": 1}),
            (ROW, {"weights": (), "completed": False, "name": "x"}), (ROW, {"kernel": 3}),
            (ROW[:-1], {"uncounted_ops": ()}),
        ]  # fmt: skip
    if cls_name == "DisplayOptions":
        return [
            ((), {}), ((3,), {}), ((), {"verbose": 2, "depth": 1}), ((1, None, None, (), 1, 9), {}),
            ((1, None, None, (), 1, 9), {"depth": 2}), ((1,), {"max_depth": 2}),
        ]  # fmt: skip
    return [((), {}), (("M",), {"mode": "eval"})]


@pytest.mark.parametrize("name", NAMES)
def test_a_record_binds_and_refuses_arguments_as_the_dataclass(name: str) -> None:
    cls, other = getattr(data, name), getattr(TWIN, name)
    for args, kwargs in calls(name):
        mine = run(cls, *args, **kwargs)
        theirs = run(other, *args, **kwargs)
        assert mine == theirs, (args, kwargs)


def test_equality_hash_and_repr_are_the_dataclass_ones() -> None:
    spec, spec_twin = data.TensorSpec("x", (1, 2), "float32"), TWIN.TensorSpec("x", (1, 2), "float32")
    row = data.ModuleRow(*ROW[:4], (spec,), (spec,), *ROW[6:], groups=2)
    row_twin = TWIN.ModuleRow(*ROW[:4], (spec_twin,), (spec_twin,), *ROW[6:], groups=2)
    assert repr(spec) == repr(spec_twin) == "TensorSpec(name='x', shape=(1, 2), dtype='float32')"
    assert repr(row) == repr(row_twin)
    assert repr(data.DisplayOptions(depth=2)) == repr(TWIN.DisplayOptions(depth=2))
    assert spec == data.TensorSpec("x", (1, 2), "float32") and hash(spec) == hash(
        data.TensorSpec("x", (1, 2), "float32")
    )
    assert spec != data.TensorSpec("x", (1, 3), "float32")
    assert spec != spec_twin  # another class, as between two dataclasses
    assert row == dataclasses.replace(row) and row != dataclasses.replace(row, groups=3)
    assert len({row, dataclasses.replace(row), dataclasses.replace(row, call=1)}) == 2


def test_a_summary_ignores_its_display_options_in_equality() -> None:
    s = small_summary()
    assert s == dataclasses.replace(s, display=data.DisplayOptions(depth=1))
    assert hash(s) == hash(dataclasses.replace(s, display=data.DisplayOptions(depth=1)))
    assert s != dataclasses.replace(s, total_params=s.total_params + 1)


@pytest.mark.parametrize("target", ["field", "other"])
def test_assignment_and_deletion_raise_frozen_instance_error(target: str) -> None:
    attr = "name" if target == "field" else "color"
    for obj in (data.TensorSpec("x", (), "f"), TWIN.TensorSpec("x", (), "f")):
        with pytest.raises(FrozenInstanceError, match=f"^cannot assign to field '{attr}'$"):
            setattr(obj, attr, "y")
        with pytest.raises(FrozenInstanceError, match=f"^cannot delete field '{attr}'$"):
            delattr(obj, attr)
        assert obj.name == "x"


def test_copies_pickles_and_json_round_trip() -> None:
    s = small_summary()
    for again in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert again == s and type(again) is type(s)
        assert again.to_dict() == s.to_dict()
        assert list(vars(again)) == list(vars(s))
    row = s.rows[1]
    assert pickle.loads(pickle.dumps(row)) == row and copy.deepcopy(row).inputs == row.inputs
    assert torchscope.Summary.from_dict(s.to_dict()) == s
    assert data.ModuleRow.from_dict(row.to_dict()) == row
    assert dataclasses.asdict(row)["inputs"] == tuple(dataclasses.asdict(t) for t in row.inputs)
    assert dataclasses.replace(s, model="Other").model == "Other"
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        dataclasses.replace(row, colour=1)


def test_the_json_of_a_summary_is_the_dataclass_one() -> None:
    s = small_summary()
    kwargs = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
    kwargs["rows"] = tuple(
        TWIN.ModuleRow(**{f.name: getattr(r, f.name) for f in dataclasses.fields(r)}) for r in s.rows
    )
    assert TWIN.Summary(**kwargs).to_dict() == s.to_dict()


# --- defaults, factories, __post_init__, refusals ------------------------------------------------


@record
class Basket(Record):
    owner: str
    items: list[str] = field(default_factory=list)
    size: int = 3
    stamp: list[int] = field(default_factory=lambda: [0], init=False)
    label: str = field(default="", kw_only=True)
    total: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.size * 2)


@dataclass(frozen=True, eq=False, repr=False)
class BasketTwin(Record):
    owner: str
    items: list[str] = field(default_factory=list)
    size: int = 3
    stamp: list[int] = field(default_factory=lambda: [0], init=False)
    label: str = field(default="", kw_only=True)
    total: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.size * 2)


def test_defaults_factories_and_post_init() -> None:
    a, b = Basket("ann"), Basket("bob", size=5)
    assert a.items == [] and a.items is not b.items  # a new list each time
    assert a.stamp == [0] and a.stamp is not b.stamp
    assert (a.size, a.total, b.total, a.label) == (3, 6, 10, "")
    assert Basket("c", ["x"], 1, label="L") == Basket(owner="c", items=["x"], size=1, label="L")
    assert list(vars(a)) == list(vars(BasketTwin("ann")))
    assert str(inspect.signature(Basket)) == str(inspect.signature(BasketTwin))
    for args, kwargs in [
        ((), {}),
        (("a", [], 1, 2), {}),
        (("a", [], 1, 2), {"label": "x"}),
        (("a",), {"stamp": []}),
    ]:
        want = run(BasketTwin, *args, **kwargs)
        assert run(Basket, *args, **kwargs) == (
            want if want[0] == "ok" else (want[0], want[1].replace("BasketTwin", "Basket"))
        )
    assert dataclasses.replace(b, owner="z").total == 10
    assert b.to_dict() == BasketTwin("bob", size=5).to_dict() and pickle.loads(pickle.dumps(b)) == b


def test_record_refuses_what_it_cannot_make() -> None:
    with pytest.raises(TypeError, match="@record needs a Frozen subclass"):
        record(type("Plain", (), {"__annotations__": {"x": "int"}}))
    with pytest.raises(TypeError, match="does not take InitVar fields"):
        record(type("WithInitVar", (Frozen,), {"__annotations__": {"x": InitVar[int]}}))
    with pytest.raises(TypeError, match="non-default argument 'y' follows default argument"):
        record(type("Order", (Frozen,), {"__annotations__": {"x": "int", "y": "int"}, "x": 1}))
    with pytest.raises(TypeError, match="Cannot overwrite attribute __setattr__"):
        record(
            type("Setter", (Frozen,), {"__annotations__": {"x": "int"}, "__setattr__": lambda s, n, v: None})
        )


def test_a_class_of_its_own_init_keeps_it() -> None:
    @record
    class Pair(Frozen):
        a: int
        b: int

        def __init__(self, both: int) -> None:
            object.__setattr__(self, "a", both)
            object.__setattr__(self, "b", both)

    assert (Pair(2).a, Pair(2).b) == (2, 2)
    assert list(inspect.signature(Pair).parameters) == ["both"]


# --- random field lists: the record behaves as the dataclass ------------------------------------

FIELD = st.fixed_dictionaries(
    {
        "default": st.sampled_from(["none", "value", "factory"]),
        "kw_only": st.booleans(),
        "init": st.booleans(),
    }
)

FACTORIES = [lambda i=i: (i,) for i in range(6)]  # shared: a Field's repr names its factory


def build(specs: list[dict[str, Any]], decorate: Any) -> Any:
    namespace: dict[str, Any] = {"__annotations__": {}}
    for i, spec in enumerate(specs):
        name = f"f{i}"
        namespace["__annotations__"][name] = "int"
        options: dict[str, Any] = {"kw_only": spec["kw_only"], "init": spec["init"]}
        if spec["default"] == "value":
            options["default"] = i
        elif spec["default"] == "factory":
            options["default_factory"] = FACTORIES[i]
        namespace[name] = field(**options)
    try:
        return decorate(types.new_class("Random", (Frozen,), {}, lambda ns: ns.update(namespace)))
    except TypeError as exc:
        return ("refused", str(exc))


def call_strategy(count: int) -> st.SearchStrategy[tuple[int, list[str]]]:
    names = [f"f{i}" for i in range(count)] + ["other", "self"]
    return st.tuples(
        st.integers(0, count + 2), st.lists(st.sampled_from(names), max_size=count + 2, unique=True)
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(FIELD, max_size=6), st.data())
def test_a_random_record_behaves_as_the_dataclass(specs: list[dict[str, Any]], draw: Any) -> None:
    mine = build(specs, record)
    theirs = build(specs, dataclass(frozen=True, eq=False, repr=False))
    if isinstance(theirs, tuple) or isinstance(mine, tuple):
        assert mine == theirs
        return
    assert [repr(f) for f in dataclasses.fields(mine)] == [repr(f) for f in dataclasses.fields(theirs)]
    assert str(inspect.signature(mine)) == str(inspect.signature(theirs))
    for _ in range(5):
        npos, keywords = draw.draw(call_strategy(len(specs)))
        args = tuple(range(100, 100 + npos))
        kwargs = {k: -1 for k in keywords}
        got, want = run(mine, *args, **kwargs), run(theirs, *args, **kwargs)
        assert got == want, (args, kwargs)
        if got[0] == "ok":
            a, b, c, d = (
                mine(*args, **kwargs),
                mine(*args, **kwargs),
                theirs(*args, **kwargs),
                theirs(*args, **kwargs),
            )
            # an init=False field without a default is unset in both: == and repr raise alike
            for check in (operator.eq, lambda x, y: hash(x) == hash(y), lambda x, y: repr(x)):
                assert outcome(check, a, b) == outcome(check, c, d)
            assert outcome(lambda x: dataclasses.replace(x) == x, a) == outcome(
                lambda x: dataclasses.replace(x) == x, c
            )
            assert vars(copy.deepcopy(a)) == vars(a)


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return "ok", fn(*args)
    except Exception as exc:
        return type(exc), str(exc)
