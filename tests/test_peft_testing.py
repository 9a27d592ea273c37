"""torchscope.testing's PEFT assertions: assert_adapters_only_trainable, assert_base_unchanged and
assert_merge_equivalent (dropout left on, a bfloat16 merge), each failing the way a user's bug makes it."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from hf_tiny import tiny_config, transformers

from torchscope.errors import TorchscopeError
from torchscope.testing import assert_adapters_only_trainable, assert_base_unchanged, assert_merge_equivalent

peft = pytest.importorskip("peft")

IDS = torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(0))
BATCH = {"input_ids": IDS, "attention_mask": torch.ones_like(IDS)}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")


def llama_lora(**config: object) -> torch.nn.Module:
    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_config(tiny_config("llama"))
    lora = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", **config
    )
    return peft.get_peft_model(base, lora)


def bert_lora(**config: object) -> torch.nn.Module:
    torch.manual_seed(0)
    base = transformers.AutoModelForSequenceClassification.from_config(tiny_config("bert", num_labels=3))
    return peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["query", "value"], **config))


def train(model: torch.nn.Module, steps: int = 3, lr: float = 1e-2) -> torch.nn.Module:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(**BATCH, labels=IDS).loss.backward()
        opt.step()
    return model


def step_of(model: torch.nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
    def step() -> None:
        opt.zero_grad()
        model(**BATCH, labels=IDS).loss.backward()
        opt.step()

    return step


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# assert_adapters_only_trainable


def test_adapters_only_trainable_passes_on_a_fresh_lora_and_a_saved_head() -> None:
    assert_adapters_only_trainable(llama_lora())
    assert_adapters_only_trainable(bert_lora(task_type="SEQ_CLS"))  # classifier in modules_to_save
    assert_adapters_only_trainable(llama_lora(bias="lora_only"))  # the biases the config asks for


def test_unfrozen_embedding_fails_with_the_cause() -> None:
    model = llama_lora()
    model.get_input_embeddings().weight.requires_grad_(True)  # the wrong fix for gradient checkpointing
    with pytest.raises(AssertionError, match=r"1 param breaks 'only the adapter trains'") as info:
        assert_adapters_only_trainable(model)
    text = str(info.value)
    assert "base_trainable  base_model.model.model.embed_tokens.weight" in text
    assert "froze it, and something unfroze it" in text
    assert "enable_input_require_grads() instead" in text
    assert info.value.check == "assert_adapters_only_trainable"
    assert [v["name"] for v in info.value.report["violations"]] == [
        "base_model.model.model.embed_tokens.weight"
    ]


def test_frozen_adapter_and_frozen_head_fail() -> None:
    model = llama_lora()
    model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight.requires_grad_(False)
    with pytest.raises(AssertionError, match="adapter_frozen") as info:
        assert_adapters_only_trainable(model)
    assert "is_trainable=True" in str(info.value)
    with pytest.raises(AssertionError, match="head_not_trained") as info:
        assert_adapters_only_trainable(bert_lora())  # no task_type: the new classifier stays frozen
    assert "modules_to_save=['classifier']" in str(info.value)
    assert {v["kind"] for v in info.value.report["violations"]} == {"head_not_trained"}


def test_not_a_peft_model_is_a_usage_error() -> None:
    with pytest.raises(TorchscopeError, match=r"needs a PEFT model .* not Linear"):
        assert_adapters_only_trainable(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# assert_base_unchanged


def test_base_unchanged_passes_on_a_correct_first_step() -> None:
    model = llama_lora().train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    assert_base_unchanged(model, step_of(model, opt), optimizer=opt)


def test_base_unchanged_fails_when_the_base_trains() -> None:
    model = llama_lora().train()
    model.get_input_embeddings().weight.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with pytest.raises(AssertionError, match=r"assert_base_unchanged: 1 of 2\d base tensors changed") as info:
        assert_base_unchanged(model, step_of(model, opt), optimizer=opt)
    text = str(info.value)
    assert "frozen_param_changed  base_model.model.model.embed_tokens.weight" in text
    assert "requires_grad=True" in text
    assert info.value.report["ok"] is False and info.value.report["frozen_params"] > 20


# ---------------------------------------------------------------------------------------------
# assert_merge_equivalent


def test_merge_equivalent_passes_in_float32_and_leaves_the_model_alone() -> None:
    model = train(llama_lora()).eval()  # trained: lora_B nonzero, so the merge has something to add
    before = state(model)
    assert_merge_equivalent(model, BATCH, atol=1e-5)
    after = state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert hasattr(model, "merge_and_unload") and type(model).__name__ == "PeftModelForCausalLM"


def test_bfloat16_merge_differs_beyond_atol_and_says_why() -> None:
    model = train(llama_lora().to(torch.bfloat16)).eval()
    with pytest.raises(AssertionError, match=r"merged model's output differs .* by up to") as info:
        assert_merge_equivalent(model, BATCH, atol=1e-5)
    text = str(info.value)
    assert "output['logits']  [2, 8, 128]" in text
    assert "model.layers.0.self_attn.q_proj" in text  # the layers whose merged weight was rounded
    assert "the base weights are bfloat16" in text and "merge a float32 copy" in text
    report = info.value.report
    assert report["max_abs_diff"] > 1e-5 and report["dtypes"] == ["bfloat16"]
    assert len(report["layers"]) == 4 and all(x["max_abs_error"] > 0 for x in report["layers"])


def test_dropout_left_on_names_the_dropout_modules() -> None:
    model = train(llama_lora(lora_dropout=0.1))  # still in train mode after training: lora_dropout live
    with pytest.raises(
        AssertionError,
        match=r"train mode, so 4 dropout modules \(4 of them lora_dropout\) are live .* nothing was compared",
    ) as info:
        assert_merge_equivalent(model, BATCH)
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_dropout.default" in str(info.value)
    assert "call model.eval()" in str(info.value)
    assert info.value.report["outputs"] == [] and len(info.value.report["dropout"]) == 4
    assert_merge_equivalent(model.eval(), BATCH, atol=1e-5)  # the fix


def test_merge_equivalent_takes_positional_inputs_and_checks_atol() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    plain = torch.nn.Sequential(torch.nn.Linear(4, 2))
    lora = peft.get_peft_model(
        net, peft.LoraConfig(r=2, target_modules=["0"], init_lora_weights=False)
    ).eval()
    assert_merge_equivalent(lora, (torch.randn(3, 4),), atol=1e-5)
    with pytest.raises(TorchscopeError, match=r"atol=-1 must be a number >= 0"):
        assert_merge_equivalent(lora, torch.randn(3, 4), atol=-1)
    with pytest.raises(TorchscopeError, match="needs a PEFT model"):
        assert_merge_equivalent(plain, torch.randn(3, 4))
