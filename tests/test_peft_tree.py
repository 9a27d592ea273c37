"""``tree`` on PEFT models: adapters shown as adapters, counts equal to peft's where peft is right."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hf_tiny import tiny_config, transformers
from rendering import text

from torchscope import load_model, tree
from torchscope._adapters.layers import logical_numel
from torchscope._treedata import ModuleTree
from torchscope.render.tree import render_tree

peft = pytest.importorskip("peft")


def _peft(model_type: str, auto: str, **lora: object) -> torch.nn.Module:
    torch.manual_seed(0)
    base = getattr(transformers, auto).from_config(tiny_config(model_type))
    return peft.get_peft_model(base, peft.LoraConfig(**lora))


CONFIGS = {
    # plain LoRA on attention of a causal LM
    "llama-qv": lambda: _peft("llama", "AutoModelForCausalLM", r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
    # a classifier: peft adds the new head to modules_to_save for SEQ_CLS
    "bert-seqcls": lambda: _peft(
        "bert", "AutoModelForSequenceClassification", r=4, lora_alpha=8, target_modules=["query", "value"],
        task_type="SEQ_CLS",
    ),
    # tied embeddings (gpt2) and a full copy of the LM head
    "gpt2-tied-lmhead": lambda: _peft(
        "gpt2", "AutoModelForCausalLM", r=4, lora_alpha=32, target_modules=["c_attn"], modules_to_save=["lm_head"],
        fan_in_fan_out=True,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_counts_equal_peft_print_trainable_parameters(name: str) -> None:
    model = CONFIGS[name]()
    trainable, total = model.get_nb_trainable_parameters()  # what print_trainable_parameters() prints
    data = tree(model)
    assert (data.trainable_params, data.total_params) == (trainable, total)
    # and both are right: every tensor once, by identity
    unique = {id(p): p for p in model.parameters()}.values()
    assert data.total_params == sum(p.numel() for p in unique)
    assert data.trainable_params == sum(p.numel() for p in unique if p.requires_grad)


def test_adapter_settings_targets_and_carriers() -> None:
    data = tree(CONFIGS["llama-qv"]())
    (a,) = data.adapters
    assert (a.name, a.kind, a.r, a.alpha, a.targets, a.active) == (
        "default",
        "LORA",
        8,
        16.0,
        ("q_proj", "v_proj"),
        True,
    )
    assert a.modules == tuple(
        f"base_model.model.model.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")
    )
    # LoRA A (r x in) and B (out x r) per carrier: q is 32 -> 32, v is 32 -> 16 (2 of 4 heads for kv)
    assert a.params == 2 * (8 * 32 + 32 * 8 + 8 * 32 + 16 * 8) == a.trainable_params == data.trainable_params
    assert a.modules_to_save == ()
    types = {m.name: m.type for m in data.modules}
    assert types["base_model.model.model.layers.0.self_attn.q_proj"] == "lora.Linear"
    assert types["base_model.model.model.layers.0.self_attn.k_proj"] == "Linear"


def test_modules_to_save_copies_and_the_rendered_line() -> None:
    data = tree(CONFIGS["bert-seqcls"]())
    (a,) = data.adapters
    assert a.modules_to_save == ("base_model.model.classifier",)
    head = 32 * 2 + 2  # the copy of the new 2-label classifier
    lora = 2 * 2 * (4 * 32 + 32 * 4)  # query and value of 2 layers
    assert a.params == a.trainable_params == head + lora
    shown = text(render_tree(data, depth=0), width=200)
    assert (
        f"Adapter: default: LORA r=4, alpha=8 on query, value (4 modules); full copies trained: classifier; "
        f"{a.params / 1000:.1f} K params, all trainable" in " ".join(shown.split())
    )


def test_tied_embedding_is_counted_once_and_reported() -> None:
    model = CONFIGS["gpt2-tied-lmhead"]()
    data = tree(model)
    assert (
        "base_model.model.transformer.wte.weight",
        "base_model.model.lm_head.original_module.weight",
    ) in data.tied
    embedding = 128 * 32
    untied_sum = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert untied_sum - data.total_params == embedding  # the tied tensor once, not twice


def test_adapters_survive_json_and_meta_loading(tmp_path) -> None:
    model = CONFIGS["llama-qv"]()
    # the base as it was before the adapter went on (the LoRA-wrapped base saves q_proj.base_layer.weight,
    # which from_pretrained would not load into q_proj.weight: it would re-initialise it)
    copy.deepcopy(model).unload().save_pretrained(tmp_path / "base")
    model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "base")
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    live = tree(model)
    meta = tree(load_model(f"hf:{tmp_path / 'adapter'}", device="meta"))
    assert meta.adapters == live.adapters
    assert (meta.trainable_params, meta.total_params) == (live.trainable_params, live.total_params)
    assert ModuleTree.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta


def test_packed_4bit_weights_count_by_their_logical_size() -> None:
    class Params4bit(torch.nn.Parameter):
        """Stands in for bitsandbytes' class (not installed here): same name, packed uint8 storage."""

    class QuantState:
        shape = torch.Size([64, 32])

    packed = Params4bit(torch.zeros(64 * 32 // 2, 1, dtype=torch.uint8), requires_grad=False)
    assert logical_numel(packed) == 64 * 32  # peft's rule, before quant_state exists: 2 per byte
    packed.quant_state = QuantState()
    assert logical_numel(packed) == 64 * 32
    layer = torch.nn.Module()
    layer.weight = packed
    data = tree(layer)
    assert data.total_params == data.frozen_params == 2048
    assert dict(data.param_bytes) == {"uint8": 1024}  # bytes are what is stored
