"""Truth: ``tree`` counts of default configs equal transformers' own counts and the published sizes.

Every model is built on meta from its model type's default config (no memory, well under a second
each). "Published" sizes are those of the checkpoint the default config describes, as the model
cards and papers give them.
"""

from __future__ import annotations

import pytest
from hf_tiny import transformers  # noqa: F401  (skips the module without transformers)

from torchscope import load_model, tree

# model type -> (class the default task builds, published size of the model its default config is, or None)
SWEEP: dict[str, tuple[str, int | None]] = {
    "bert": ("BertModel", 109_482_240),  # bert-base-uncased, with its pooler
    "gpt2": ("GPT2LMHeadModel", 124_439_808),  # gpt2 (the LM head is the tied embedding)
    "llama": ("LlamaForCausalLM", 6_738_415_616),  # Llama-2-7B
    "mistral": ("MistralForCausalLM", 7_241_732_096),  # Mistral-7B-v0.1
    "mixtral": ("MixtralForCausalLM", 46_702_792_704),  # Mixtral-8x7B
    "t5": ("T5Model", 60_506_624),  # t5-small
    "distilbert": ("DistilBertModel", 66_362_880),  # distilbert-base-uncased
    "opt": ("OPTForCausalLM", 125_239_296),  # facebook/opt-125m
    "falcon": ("FalconForCausalLM", 6_921_720_704),  # falcon-7b
    "qwen2": ("Qwen2ForCausalLM", None),
    "gemma": ("GemmaForCausalLM", None),
    "phi3": ("Phi3ForCausalLM", None),
    "roberta": ("RobertaModel", None),
    "albert": ("AlbertModel", None),
    "bart": ("BartModel", None),
}


@pytest.mark.parametrize("model_type", sorted(SWEEP))
def test_default_config_counts(model_type: str) -> None:
    cls, published = SWEEP[model_type]
    model = load_model(f"hf:{model_type}", device="meta")
    assert type(model).__name__ == cls
    data = tree(model)
    # transformers' own count (unique parameters), and ours, by identity, from the tree
    assert data.total_params == model.num_parameters()
    assert data.trainable_params + data.frozen_params == data.total_params
    if published is not None:
        assert data.total_params == published


def test_tied_embeddings_are_counted_once() -> None:
    data = tree(load_model("hf:gpt2", device="meta"))
    assert ("transformer.wte.weight", "lm_head.weight") in data.tied
    untied = tree(load_model("hf:gpt2", device="meta", config={"tie_word_embeddings": False}))
    assert untied.total_params - data.total_params == 50257 * 768  # the LM head, now a tensor of its own
