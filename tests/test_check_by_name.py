"""The freeze checks read the model by name, before and after: a tensor the step *replaces* (a new
nn.Parameter, a swapped module, a re-bound buffer, resize_token_embeddings) is caught by every surface
(check_step, assert_frozen, expect_frozen, check-freeze, report), as surely as one edited in place.
Also: a check with nothing to look at is not held; NaN before the step is not blamed on the step;
check-freeze takes a TorchScript file."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from zoo import SmallCNN

from torchscope import check_step, freeze
from torchscope._check import take_snapshot
from torchscope._checkparts.plan import make_plan
from torchscope._report import collect_report
from torchscope.errors import TorchscopeError
from torchscope.strategies import freeze_patterns, inputs_for, small_models
from torchscope.testing import assert_frozen, expect_frozen

ZOO = str(Path(__file__).parent / "zoo.py")


class Net(nn.Module):
    """A frozen backbone (Linear + BatchNorm in eval mode) under a trainable head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


def _fine_tune(seed: int = 0) -> tuple[Net, torch.optim.Optimizer, Callable[[], None]]:
    """The model, an optimizer over the trainable params, and one correct training step."""
    torch.manual_seed(seed)
    model = Net()
    model.backbone.requires_grad_(False)
    model.backbone.eval()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))

    def train() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return model, opt, train


# What users do inside their step that replaces a frozen tensor instead of editing it.
def _new_parameter(m: Net) -> None:
    m.backbone[0].weight = nn.Parameter(torch.randn(8, 4))


def _new_parameter_same_values(m: Net) -> None:
    m.backbone[0].weight = nn.Parameter(m.backbone[0].weight.detach().clone(), requires_grad=False)


def _swap_backbone(m: Net) -> None:
    m.backbone = nn.Linear(4, 8)


def _rebind_running_mean(m: Net) -> None:
    m.backbone[1].running_mean = torch.zeros(8)


def _unfreeze(m: Net) -> None:
    m.backbone.requires_grad_(True)


REPLACEMENTS: dict[str, tuple[Callable[[Net], None], str, str]] = {
    # case: (what the step does, the violation kind, the name it is reported under)
    "new nn.Parameter": (_new_parameter, "tensor_replaced", "backbone.0.weight"),
    "new nn.Parameter, same values": (_new_parameter_same_values, "tensor_replaced", "backbone.0.weight"),
    "swapped backbone": (_swap_backbone, "tensor_removed", "backbone.0.weight"),
    "re-bound running_mean": (_rebind_running_mean, "tensor_replaced", "backbone.1.running_mean"),
    "requires_grad_(True) in the step": (_unfreeze, "requires_grad_changed", "backbone.0.weight"),
}


def _kinds(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in report.violations:
        out.setdefault(v.kind, []).append(v.name)
    return out


@pytest.mark.parametrize("mode", ["exact", "fingerprint"])
@pytest.mark.parametrize("case", sorted(REPLACEMENTS))
def test_check_step_sees_a_tensor_the_step_replaces(case: str, mode: str) -> None:
    mutate, kind, name = REPLACEMENTS[case]
    model, opt, train = _fine_tune()

    def step() -> None:
        mutate(model)
        train()

    report = check_step(model, step, optimizer=opt, mode=mode)
    assert not report.ok
    assert name in _kinds(report)[kind]
    assert report.status(kind) == "violated"


def test_a_new_parameter_says_what_replaced_it_and_how_to_fix_it() -> None:
    model, opt, train = _fine_tune()

    def step() -> None:
        model.backbone[0].weight = nn.Parameter(torch.randn(8, 4))
        train()

    [v] = check_step(model, step, optimizer=opt).violations
    assert (v.kind, v.name) == ("tensor_replaced", "backbone.0.weight")
    assert v.max_abs_change is not None and v.max_abs_change > 0  # the values are compared too: same shape
    assert "new tensor after the step (requires_grad=True, values changed)" in v.cause
    assert "assigned a new nn.Parameter" in v.cause and "re-apply freeze(...)" in v.cause
    [group] = check_step(*_replacing_again()).groups
    assert group.fix == "torchscope.freeze(model, 'backbone.0.weight')"


def _replacing_again() -> tuple[Net, Callable[[], None]]:
    model, _, train = _fine_tune()

    def step() -> None:
        model.backbone[0].weight = nn.Parameter(torch.randn(8, 4))
        train()

    return model, step


def test_a_replacement_with_the_same_values_is_still_a_replacement() -> None:
    model, opt, train = _fine_tune()

    def step() -> None:
        w = model.backbone[0].weight
        model.backbone[0].weight = nn.Parameter(w.detach().clone(), requires_grad=False)
        train()

    [v] = check_step(model, step, optimizer=opt).violations
    assert v.kind == "tensor_replaced" and v.max_abs_change == 0.0
    assert "(same values)" in v.cause


def test_a_swapped_module_names_the_module_and_the_new_names() -> None:
    model, opt, train = _fine_tune()

    def step() -> None:
        model.backbone = nn.Linear(4, 8)
        train()

    report = check_step(model, step, optimizer=opt)
    kinds = _kinds(report)
    assert kinds["tensor_removed"] == [
        "backbone.0.weight", "backbone.0.bias", "backbone.1.weight", "backbone.1.bias",
        "backbone.1.running_mean", "backbone.1.running_var", "backbone.1.num_batches_tracked",
    ]  # fmt: skip
    assert kinds["tensor_added"] == ["backbone.weight", "backbone.bias"]
    removed, added = report.groups  # one cause each, said once
    assert removed.count == 7 and "its module 'backbone' was replaced or deleted" in removed.cause
    assert "trains although everything around it was frozen" in added.cause
    assert added.fix == "torchscope.freeze(model, 'backbone.*')"


def test_a_rebound_frozen_buffer_is_named_with_its_module() -> None:
    model, opt, train = _fine_tune()

    def step() -> None:
        model.backbone[1].running_mean = torch.full((8,), 5.0)
        train()

    [v] = check_step(model, step, optimizer=opt).violations
    assert (v.kind, v.name, v.max_abs_change) == ("tensor_replaced", "backbone.1.running_mean", 5.0)
    assert "re-bound this buffer of BatchNorm1d 'backbone.1' to a new tensor" in v.cause


def test_requires_grad_switched_back_on_is_the_cause_not_a_stale_grad() -> None:
    # an optimizer over every param with weight decay: the unfrozen weight moves, and the cause says why
    model, _, _ = _fine_tune()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))

    def step() -> None:
        model.backbone[0].requires_grad_(True)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    report = check_step(model, step, optimizer=opt)
    kinds = _kinds(report)
    assert kinds["requires_grad_changed"] == ["backbone.0.weight", "backbone.0.bias"]
    assert kinds["frozen_param_changed"] == ["backbone.0.weight", "backbone.0.bias"]
    changed = report.by_kind("frozen_param_changed")[0]
    assert changed.cause.startswith("requires_grad was switched back on during the step")
    assert "still set from before the freeze" not in changed.cause
    assert {g.fix for g in report.groups if g.kind == "requires_grad_changed"} == {
        "torchscope.freeze(model, 'backbone.0.*')"
    }


def test_a_trainable_head_replaced_in_the_step_does_not_count_as_trained() -> None:
    model, opt, train = _fine_tune()

    def step() -> None:
        train()
        model.fc = nn.Linear(8, 3)  # replace_head after the optimizer was built: it never trains

    report = check_step(model, step, optimizer=opt)
    assert _kinds(report) == {"tensor_replaced": ["fc.weight", "fc.bias"]}
    assert "an optimizer built before the step still holds the old one" in report.violations[0].cause


def test_a_cache_buffer_rebuilt_by_a_trainable_module_is_not_a_violation() -> None:
    class Cached(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.register_buffer("last", torch.zeros(3), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.fc(x)
            self.last = out.detach().mean(0)  # a new tensor every call: a cache, not frozen state
            return out

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), Cached())
    model[0].requires_grad_(False)
    opt = torch.optim.SGD(model[1].parameters(), lr=0.1)

    def step() -> None:
        opt.zero_grad()
        model(torch.randn(5, 4)).square().mean().backward()
        opt.step()

    assert check_step(model, step, optimizer=opt).ok


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_resize_token_embeddings_of_a_frozen_embedding_is_caught(model_type: str) -> None:
    pytest.importorskip("transformers")
    import transformers
    from hf_tiny import tiny_config

    torch.manual_seed(0)
    lm = transformers.AutoModelForCausalLM.from_config(tiny_config(model_type))
    lm.get_input_embeddings().requires_grad_(False)
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(0, 128, (2, 8))
    embed = next(n for n, p in lm.named_parameters() if p is lm.get_input_embeddings().weight)

    def step() -> None:
        lm.resize_token_embeddings(130)  # a step that adds tokens after the freeze
        opt.zero_grad()
        lm(input_ids=ids, labels=ids).loss.backward()
        opt.step()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_step(lm, step, optimizer=opt)
    replaced = {v.name: v for v in report.by_kind("tensor_replaced")}
    assert embed in replaced
    assert "shape [128, 32] -> [130, 32]" in replaced[embed].cause
    assert "as resize_token_embeddings does" in replaced[embed].cause
    if model_type == "llama":  # untied: the output head is a new module, which the optimizer does not hold
        assert "lm_head.weight" in replaced


@pytest.mark.parametrize("case", sorted(REPLACEMENTS))
def test_assert_frozen_fails_on_a_replacement(case: str) -> None:
    mutate, kind, name = REPLACEMENTS[case]
    model, opt, train = _fine_tune()

    def step() -> None:
        mutate(model)
        train()

    with pytest.raises(AssertionError, match=kind) as info:
        assert_frozen(model, step, optimizer=opt)
    assert name in [v["name"] for v in info.value.report["violations"] if v["kind"] == kind]


@pytest.mark.parametrize("case", sorted(REPLACEMENTS))
def test_expect_frozen_fails_on_a_replacement(case: str) -> None:
    mutate, kind, name = REPLACEMENTS[case]
    model, _, train = _fine_tune()
    with pytest.raises(AssertionError, match=kind) as info:
        with expect_frozen(model):
            mutate(model)
            train()
    assert name in [v["name"] for v in info.value.report["violations"] if v["kind"] == kind]


def test_expect_frozen_names_the_shape_of_a_resized_tensor() -> None:
    model, _, _ = _fine_tune()
    with pytest.raises(AssertionError, match=r"tensor_replaced +backbone\.0\.weight +\[8, 4\] -> \[8, 5\]"):
        with expect_frozen(model, "backbone.0"):
            model.backbone[0].weight.data = torch.zeros(8, 5)


def test_a_trainable_param_replaced_is_not_a_frozen_violation_for_assert_frozen() -> None:
    model, opt, train = _fine_tune()

    def step() -> None:
        train()
        model.fc = nn.Linear(8, 3)

    assert_frozen(model, step, optimizer=opt)  # the frozen backbone is untouched


def test_the_snapshot_compares_against_the_start_every_time() -> None:
    # the use a guard makes of it: one snapshot at the start, a comparison after every step
    model, _, train = _fine_tune()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    snap = take_snapshot(model, frozen=frozen, mode="fingerprint")
    assert snap.nbytes == 8 * len(frozen)  # O(1) per tensor: no copy
    train()
    assert not [c for c in snap.compare(model).changes if c.status != "same" or c.changed or c.flag_changed]
    _new_parameter(model)
    for _ in range(2):  # still reported against the start, not against the last comparison
        train()
        [c] = [c for c in snap.compare(model).changes if c.status != "same"]
        assert (c.name, c.status, c.changed, c.requires_grad_after) == ("backbone.0.weight", "replaced", True, True)


def test_nothing_trainable_is_not_checked_not_held() -> None:
    model, _, _ = _fine_tune()
    model.fc.requires_grad_(False)

    def step() -> None:
        model(torch.randn(6, 4))

    report = check_step(model, step)
    assert report.ok and report.status("trainable_not_updated") == "not_checked"
    assert "trainable_not_updated" not in report.held
    assert report.to_dict()["not_checked"]["trainable_not_updated"] == "no trainable param to check"
    assert report.to_dict()["status"]["frozen_param_changed"] == "held"
    assert "not checked: trainable_not_updated (no trainable param to check)" in str(report)


def test_expect_frozen_and_assert_frozen_with_nothing_frozen_are_errors() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(TorchscopeError, match=r"nothing in the model is frozen .* so expect_frozen has nothing to check"):
        with expect_frozen(model):
            model(torch.randn(1, 2))
    with pytest.raises(TorchscopeError, match="so assert_frozen has nothing to check"):
        assert_frozen(model, lambda: model(torch.randn(1, 2)))


def test_a_frozen_weight_that_was_nan_before_the_step_is_not_blamed_on_the_lr() -> None:
    model, opt, train = _fine_tune()
    with torch.no_grad():
        model.backbone[0].weight[0, 0] = float("nan")  # loaded that way
    report = check_step(model, train, optimizer=opt)
    causes = {v.name: v.cause for v in report.by_kind("nonfinite")}
    assert causes["backbone.0.weight"].startswith("it already held NaN/Inf before the step")
    assert "lr too high" not in causes["backbone.0.weight"]
    assert report.by_kind("frozen_param_changed") == ()  # a NaN that stays NaN is unchanged
    # the head turned NaN during the step because the forward carried the backbone's NaN into it
    assert causes["fc.weight"].startswith("it was finite before the step, and 'backbone.0.weight' already held NaN")
    assert "lr too high" not in causes["fc.weight"]


@pytest.mark.parametrize("mode", ["exact", "fingerprint"])
def test_a_frozen_weight_with_nan_that_the_step_also_writes_to(mode: str) -> None:
    model, opt, train = _fine_tune()
    with torch.no_grad():
        model.backbone[0].weight[0, 0] = float("nan")

    def step() -> None:
        with torch.no_grad():
            model.backbone[0].weight[1].add_(1.0)  # an in-place write in the step
        train()

    report = check_step(model, step, optimizer=opt, mode=mode)
    assert [v.name for v in report.by_kind("frozen_param_changed")] == ["backbone.0.weight"]
    cause = {v.name: v.cause for v in report.by_kind("nonfinite")}["backbone.0.weight"]
    if mode == "exact":  # the copy says the NaN was there before the write
        assert cause.startswith("it already held NaN/Inf before the step")
    else:
        assert cause.startswith("it is frozen, yet NaN/Inf are in it after the step")


def test_nan_that_the_update_writes_is_still_blamed_on_the_update() -> None:
    model, _, _ = _fine_tune()
    opt = torch.optim.SGD(model.fc.parameters(), lr=1e38)
    x, y = torch.randn(6, 4) * 1e3, torch.randint(0, 3, (6,))

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.step()

    causes = {v.name: v.cause for v in check_step(model, step, optimizer=opt).by_kind("nonfinite")}
    assert "fc.weight" in causes and "the update blew up (lr too high" in causes["fc.weight"]


def test_a_stale_nan_grad_is_said_to_predate_the_step() -> None:
    model, _, _ = _fine_tune()
    model.fc.weight.grad = torch.full_like(model.fc.weight, float("nan"))
    report = check_step(model, lambda: model(torch.randn(6, 4)))  # a step that leaves grads alone
    [v] = [v for v in report.by_kind("nonfinite") if v.name == "fc.weight.grad"]
    assert v.cause.startswith("its grad already held NaN/Inf before the step")


# ------------------------------------------------------------------------------------------- the CLI

MODELS = '''
import torch
from torch import nn


class Replacer(nn.Module):
    """A forward that replaces its frozen weight with a new Parameter, as an adapter load would."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 8)
        self.fc = nn.Linear(8, 3)
        self.backbone.requires_grad_(False)

    def forward(self, x):
        if self.training:
            self.backbone.weight = nn.Parameter(torch.randn(8, 4))
        return self.fc(self.backbone(x))


class Rebinder(nn.Module):
    """A forward that re-binds a frozen BatchNorm's running_mean instead of updating it."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
        self.fc = nn.Linear(8, 3)
        self.backbone.requires_grad_(False)

    def forward(self, x):
        if self.training:
            self.backbone[1].running_mean = torch.full((8,), 3.0)
        return self.fc(self.backbone(x))
'''


@pytest.fixture
def models(tmp_path: Path) -> str:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return str(path)


@pytest.mark.parametrize(("cls", "name"), [("Replacer", "backbone.weight"), ("Rebinder", "backbone.1.running_mean")])
def test_check_freeze_sees_a_forward_that_replaces_a_frozen_tensor(cli, models: str, cls: str, name: str) -> None:
    result = cli("check-freeze", f"{models}:{cls}", "--input-size", "4,4", "--eval-bn", "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert [(v["kind"], v["name"]) for v in data["violations"]] == [("tensor_replaced", name)]
    assert data["status"]["tensor_replaced"] == "violated"
    text = cli("check-freeze", f"{models}:{cls}", "--input-size", "4,4", "--eval-bn", "--no-color").stdout
    assert "✗ every tensor under check is the one the step started with (none replaced)" in text


def test_check_freeze_with_nothing_trainable_is_not_a_success(cli) -> None:
    empty = cli("check-freeze", f"{ZOO}:SmallCNN", "--input-size", "2,3,8,8", "--freeze", "*", "--eval-bn")
    assert empty.exit_code == 2
    assert empty.stderr.strip().splitlines() == [
        f"error: nothing in {ZOO}:SmallCNN is trainable, so no step updates anything and 'every trainable param "
        "updated' has nothing to check; leave something to train (--unfreeze 'fc.*', --freeze-backbone) or pass "
        "--allow-empty"
    ]
    allowed = cli("check-freeze", f"{ZOO}:SmallCNN", "--input-size", "2,3,8,8", "--freeze", "*", "--eval-bn",
                  "--allow-empty", "--no-color")  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    assert "! nothing trainable, updates not checked" in allowed.stdout
    assert "- every trainable param updated: no trainable param to check, not checked" in allowed.stdout
    assert "✓ every trainable param updated" not in allowed.stdout and "all invariants hold" not in allowed.stdout


def _script(path: Path, model: nn.Module) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated; users still have files
        torch.jit.script(model).save(str(path))
    return str(path)


def test_check_freeze_runs_on_a_torchscript_file(cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = _script(tmp_path / "m.pt", nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                                    nn.Flatten(), nn.Linear(4 * 6 * 6, 3)))  # fmt: skip
    bug = cli("check-freeze", spec, "--freeze", "0,1", "--input-size", "2,3,8,8", "--json")
    assert bug.exit_code == 1, bug.output
    data = json.loads(bug.stdout)
    assert {v["kind"] for v in data["violations"]} == {"frozen_buffer_changed"}
    assert "its BatchNorm2d module ran in train mode" in data["violations"][0]["cause"]
    fixed = cli("check-freeze", spec, "--freeze", "0,1", "--input-size", "2,3,8,8", "--eval-bn", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["trainable_params"] == 2
    nothing = cli("check-freeze", spec, "--input-size", "2,3,8,8")
    assert nothing.exit_code == 2 and "is frozen, so there is nothing to check" in nothing.stderr


# ---------------------------------------------------------------------------------------- the report


def test_report_freeze_section_sees_a_replaced_tensor(models: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("by_name_models", models)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = collect_report(module.Rebinder(), input_size=(4, 4), memory=False, train_bn=False)
    assert data.check_ok is False
    assert data.check is not None
    assert [(v.kind, v.name) for v in data.check.violations] == [("tensor_replaced", "backbone.1.running_mean")]


def test_report_says_which_checks_had_nothing_to_look_at() -> None:
    torch.manual_seed(0)
    net = SmallCNN()
    net.requires_grad_(False)
    data = collect_report(net, input_size=(2, 3, 8, 8), memory=False, train_bn=False)
    assert data.check_ok is True
    assert data.check is not None
    assert ("trainable_not_updated", "no trainable param to check") in data.check.not_checked
    assert "trainable_not_updated" not in data.check.held
    from torchscope.render.html import render_html

    page = render_html(data)
    assert "every checked freeze invariant holds" in page and "every freeze invariant holds" not in page


# ---------------------------------------------------------------- the class stays fixed: a property


def _rebind(model: nn.Module, name: str) -> None:
    """Re-bind ``name`` to a new tensor with the same values and flag: only identity gives it away."""
    prefix, _, short = name.rpartition(".")
    owner = model.get_submodule(prefix)
    old = getattr(owner, short)
    new = old.detach().clone()
    setattr(owner, short, nn.Parameter(new, requires_grad=old.requires_grad) if isinstance(old, nn.Parameter) else new)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(small_models(), st.data())
def test_check_step_names_exactly_the_tensors_replaced_by_name(model: nn.Module, data: st.DataObject) -> None:
    # random small models (tied weights, shared children, norm layers) with a random freeze; the step
    # re-binds a random set of the frozen names to equal copies
    patterns = data.draw(freeze_patterns(model))
    x = data.draw(inputs_for(model))
    if patterns:
        freeze(model, *patterns)
    model.eval()
    plan = make_plan(model, None)
    frozen_names = [n for t in plan.frozen + plan.frozen_buffers for n in t.names]
    planted = data.draw(st.lists(st.sampled_from(frozen_names), unique=True, min_size=1) if frozen_names else st.just([]))
    before = {n: t for n, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]}

    def step() -> None:
        model(x)
        for name in planted:
            _rebind(model, name)

    report = check_step(model, step)
    after = {n: t for n, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]}
    replaced = {id(before[n]) for n in frozen_names if after[n] is not before[n]}
    reported = {id(before[v.name]) for v in report.by_kind("tensor_replaced")}
    event(f"replaced {min(len(replaced), 3)}")
    assert reported == replaced, str(report)
    assert all(v.max_abs_change == 0.0 for v in report.by_kind("tensor_replaced"))  # same values, compared
    others = [v for v in report.violations if v.kind not in ("tensor_replaced", "trainable_not_updated")]
    assert not others, str(report)
