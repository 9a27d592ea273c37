"""check_step on PEFT (LoRA) models: the base stays put, the adapters train, the first-step lora_A
note instead of a false alarm, and the causes of the classic PEFT bugs, each written as users write it."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hf_tiny import save_tiny, tiny_config, transformers
from typer.testing import Result

import torchscope
from torchscope._adapters.targets import unmatched_targets_message
from torchscope.errors import SpecError

peft = pytest.importorskip("peft")

IDS = torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")  # peft/transformers deprecation chatter


def llama_lora(**config: object) -> torch.nn.Module:
    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_config(tiny_config("llama"))
    lora = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", **config
    )
    return peft.get_peft_model(base, lora).train()


def bert_lora(**config: object) -> torch.nn.Module:
    torch.manual_seed(0)
    base = transformers.AutoModelForSequenceClassification.from_config(tiny_config("bert", num_labels=3))
    return peft.get_peft_model(
        base, peft.LoraConfig(r=4, target_modules=["query", "value"], **config)
    ).train()


def lm_step(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int = 1) -> Callable[[], None]:
    def step() -> None:
        for _ in range(steps):
            opt.zero_grad()
            model(input_ids=IDS, labels=IDS).loss.backward()
            opt.step()

    return step


def cls_step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
    def step() -> None:
        opt.zero_grad()
        model(input_ids=IDS, labels=torch.tensor([0, 2])).loss.backward()
        opt.step()

    return step


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------
# a correct LoRA step: no false alarm, the first-step lora_A note


def test_correct_sgd_first_step_is_ok_with_a_note_not_a_violation() -> None:
    model = llama_lora()
    opt = torch.optim.SGD(trainable(model), lr=0.1)  # plain SGD, no decay: lora_A's grad is exactly 0
    a_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_A" in n}
    report = torchscope.check_step(model, lm_step(model, opt), optimizer=opt)
    assert report.ok and report.violations == ()
    # the whole base checked frozen, the 8 adapter tensors (2 layers x q,v x A,B) checked updated
    assert (report.frozen_params, report.trainable_params) == (21, 8)
    assert "head_not_trained" not in report.checks  # a causal LM adds no task head: nothing to check, not shown as held
    assert report.caveats == (
        "4 lora_A params did not change: on the first step after init lora_B is still zero, so lora_A's grad is "
        "exactly zero; not a bug: lora_A trains from the next step on (its lora_B has moved)",
    )
    # the note is true: lora_A really did not move
    assert all(torch.equal(p, a_before[n]) for n, p in model.named_parameters() if "lora_A" in n)


def test_correct_adamw_first_step_lora_a_moves_by_decay_alone() -> None:
    model = llama_lora()
    opt = torch.optim.AdamW(trainable(model), lr=1e-2, weight_decay=0.01)
    report = torchscope.check_step(model, lm_step(model, opt), optimizer=opt)
    assert report.ok
    assert report.caveats[0].startswith("4 lora_A params changed by weight decay alone: on the first step")


def test_second_step_needs_no_note_and_without_optimizer_the_rule_holds() -> None:
    model = llama_lora()
    opt = torch.optim.SGD(trainable(model), lr=0.1)
    report = torchscope.check_step(model, lm_step(model, opt, steps=2), optimizer=opt)
    assert report.ok and report.caveats == ()  # lora_B moved on step 1, so lora_A trains on step 2
    fresh = llama_lora()
    opt = torch.optim.SGD(trainable(fresh), lr=0.1)
    report = torchscope.check_step(fresh, lm_step(fresh, opt), mode="fingerprint")  # no optimizer given
    assert report.ok and report.caveats[0].startswith("4 lora_A params did not change")


def test_lora_a_too_slow_to_move_under_sgd_says_why() -> None:
    # after one small SGD step lora_B is tiny, so lora_A's grad (proportional to it) cannot move it
    model = llama_lora()
    opt = torch.optim.SGD(trainable(model), lr=1e-5)
    lm_step(model, opt)()
    report = torchscope.check_step(model, lm_step(model, opt), optimizer=opt)
    stuck = report.by_kind("trainable_not_updated")
    assert [v.name.split(".")[-3] for v in stuck] == ["lora_A"] * 4 and report.caveats == ()
    assert all(
        v.cause.startswith("its grad is nonzero but too small to move it: lora_A's grad is proportional")
        for v in stuck
    )
    assert "train with Adam/AdamW" in stuck[0].cause


def test_lora_a_whose_lora_b_cannot_train_is_still_a_violation() -> None:
    # the note needs lora_B to have moved: a user who froze lora_B has a lora_A that never trains
    model = llama_lora()
    for n, p in model.named_parameters():
        if "lora_B" in n:
            p.requires_grad_(False)
    opt = torch.optim.SGD(trainable(model), lr=0.1)
    report = torchscope.check_step(model, lm_step(model, opt), optimizer=opt)
    assert not report.ok and report.caveats == ()
    kinds = {(v.kind, v.name.split(".")[-3]) for v in report.violations}
    assert kinds == {("trainable_not_updated", "lora_A")}
    assert len(report.violations) == 4


def test_base_weight_moved_is_caught() -> None:
    # the wrong fix for checkpointing: unfreezing the embeddings trains the base
    model = llama_lora()
    model.get_input_embeddings().weight.requires_grad_(True)
    opt = torch.optim.SGD(trainable(model), lr=0.1)
    base = "base_model.model.model.embed_tokens.weight"
    report = torchscope.check_step(
        model,
        lm_step(model, opt),
        optimizer=opt,
        frozen=[n for n, p in model.named_parameters() if "lora_" not in n],
    )
    assert [(v.kind, v.name) for v in report.violations] == [("frozen_param_changed", base)]


# ---------------------------------------------------------------------------------------------
# (b) gradient checkpointing without enable_input_require_grads


def _checkpointed_the_old_way(model: torch.nn.Module) -> None:
    # What transformers < 4.35 did (and a model whose main input is not input_ids still gets):
    # reentrant checkpointing and no hook making the embeddings' output require grad.
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model.disable_input_require_grads()


def test_checkpointing_without_input_grads_names_the_cause() -> None:
    model = bert_lora(task_type="SEQ_CLS")
    _checkpointed_the_old_way(model)
    opt = torch.optim.AdamW(trainable(model), lr=1e-3)
    report = torchscope.check_step(model, cls_step(model, opt), optimizer=opt)
    assert not report.ok
    lora = [v for v in report.violations if "lora_" in v.name]
    assert len(lora) == 8 and {v.kind for v in lora} == {"trainable_not_updated"}
    assert all("enable_input_require_grads()" in v.cause and "use_reentrant=True" in v.cause for v in lora)
    # the classifier (modules_to_save, after the checkpointed blocks) did train
    assert not [v for v in report.violations if "classifier" in v.name]


def test_checkpointing_fix_passes() -> None:
    model = bert_lora(task_type="SEQ_CLS")
    _checkpointed_the_old_way(model)
    model.enable_input_require_grads()  # the fix the cause names
    opt = torch.optim.AdamW(trainable(model), lr=1e-3)
    assert torchscope.check_step(model, cls_step(model, opt), optimizer=opt).ok


def test_checkpointing_causal_lm_error_gets_the_cause_as_a_note() -> None:
    # nothing after the blocks trains in a causal LM, so backward itself fails: the error says why
    model = llama_lora()
    _checkpointed_the_old_way(model)
    opt = torch.optim.SGD(trainable(model), lr=0.1)
    with pytest.raises(RuntimeError, match="does not require grad") as info:
        torchscope.check_step(model, lm_step(model, opt), optimizer=opt)
    assert any("enable_input_require_grads()" in n for n in info.value.__notes__)


# ---------------------------------------------------------------------------------------------
# (c) a new classification head left out of modules_to_save


def test_head_not_in_modules_to_save_is_a_violation_with_the_fix() -> None:
    model = bert_lora()  # no task_type: peft freezes the new classifier with the base
    opt = torch.optim.AdamW(trainable(model), lr=1e-3)
    report = torchscope.check_step(model, cls_step(model, opt), optimizer=opt)
    heads = report.by_kind("head_not_trained")
    assert [v.name for v in heads] == [
        "base_model.model.classifier.weight",
        "base_model.model.classifier.bias",
    ]
    assert heads[0].cause == (
        "the task head 'classifier' of BertForSequenceClassification is frozen and not in modules_to_save, so no "
        "step trains it: it keeps the weights it was built with (random, for a head the fine-tune adds); give "
        "LoraConfig(task_type='SEQ_CLS', ...) or LoraConfig(modules_to_save=['classifier'], ...)"
    )
    assert [g.count for g in report.groups if g.kind == "head_not_trained"] == [2]


def test_head_in_modules_to_save_or_chosen_frozen_is_no_violation() -> None:
    model = bert_lora(task_type="SEQ_CLS")
    opt = torch.optim.AdamW(trainable(model), lr=1e-3)
    assert torchscope.check_step(model, cls_step(model, opt), optimizer=opt).ok
    kept = bert_lora()
    opt = torch.optim.AdamW(trainable(kept), lr=1e-3)
    frozen = [
        n for n, p in kept.named_parameters() if not p.requires_grad
    ]  # the user says: frozen on purpose
    assert torchscope.check_step(kept, cls_step(kept, opt), optimizer=opt, frozen=frozen).ok


# ---------------------------------------------------------------------------------------------
# (a) target_modules that match nothing


def test_target_names_that_match_nothing_name_the_closest() -> None:
    base = transformers.AutoModelForSequenceClassification.from_config(tiny_config("bert"))
    with pytest.raises(ValueError, match="not found in the base model"):  # peft's own words stop there
        peft.get_peft_model(base, peft.LoraConfig(target_modules=["q_proj", "v_proj"]))
    assert unmatched_targets_message(base, ["q_proj", "v_proj"]) == (
        "target_modules 'q_proj', 'v_proj' match no module of BertForSequenceClassification (did you mean 'query' "
        "for 'q_proj', 'value' for 'v_proj'?); the layers LoRA can adapt are named: word_embeddings, "
        "position_embeddings, token_type_embeddings, query, key, value, dense, classifier"
    )
    assert unmatched_targets_message(base, ["query", "value"]) is None
    assert unmatched_targets_message(base, r".*\.(query|value)") is None
    assert unmatched_targets_message(base, r".*\.q_proj").startswith(
        "target_modules '.*\\\\.q_proj' matches no module"
    )


def _llama_recipe_on_bert(tmp_path: Path) -> Path:
    # A LoRA config from a Llama recipe, saved for a BERT base: the way this bug is written.
    base_dir = tmp_path / "bert"
    save_tiny(base_dir, "bert", "AutoModelForSequenceClassification")
    adapter_dir = tmp_path / "adapter"
    peft.LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS", base_model_name_or_path=str(base_dir)
    ).save_pretrained(adapter_dir)
    return adapter_dir


def test_unmatched_targets_from_an_adapter_dir_are_one_line(tmp_path: Path) -> None:
    adapter = _llama_recipe_on_bert(tmp_path)
    with pytest.raises(
        SpecError, match=r"match no module of BertForSequenceClassification \(did you mean 'query'"
    ):
        torchscope.load_model(f"hf:{adapter}")


@pytest.mark.slow
def test_unmatched_targets_exit_2_at_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    adapter = _llama_recipe_on_bert(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "torchscope", "tree", f"hf:{adapter}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'query' for 'q_proj', 'value' for 'v_proj'?" in lines[0]


def _saved_adapter(tmp_path: Path, **config: object) -> Path:
    base = save_tiny(tmp_path / "bert", "bert", "AutoModelForSequenceClassification", num_labels=3)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["query", "value"], **config))
    lora.peft_config["default"].base_model_name_or_path = str(tmp_path / "bert")
    lora.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter"


def test_check_freeze_cli_on_a_saved_adapter(tmp_path: Path, cli: Callable[..., Result]) -> None:
    ok = cli(
        "check-freeze",
        f"hf:{_saved_adapter(tmp_path / 'a', task_type='SEQ_CLS')}",
        "--tokens",
        "2x16",
        "--json",
    )
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["ok"] and "head_not_trained" in data["checks"]
    assert any("lora_A params changed by weight decay alone" in c for c in data["caveats"])  # SGD's decay

    bad = cli("check-freeze", f"hf:{_saved_adapter(tmp_path / 'b')}", "--tokens", "2x16", "--json")
    assert bad.exit_code == 1
    kinds = [(v["kind"], v["name"]) for v in json.loads(bad.stdout)["violations"]]
    assert kinds == [
        ("head_not_trained", "base_model.model.classifier.weight"),
        ("head_not_trained", "base_model.model.classifier.bias"),
    ]
