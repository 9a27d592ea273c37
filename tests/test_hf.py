"""``hf:`` models: model types, local directories, adapters, safetensors weights; never the network."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hf_tiny import TINY, save_tiny, transformers

from torchscope import load_model, tree
from torchscope.errors import SpecError

peft = pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: hf: loading must never reach the hub."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------
# model types


def test_model_type_builds_on_meta_with_the_default_head() -> None:
    llama = load_model("hf:llama", device="meta")
    bert = load_model("hf:bert", device="meta")
    assert type(llama).__name__ == "LlamaForCausalLM"  # decoder-only: causal LM by default
    assert type(bert).__name__ == "BertModel"  # encoder: the base model
    assert all(p.is_meta for p in [*llama.parameters(), *bert.parameters()])


def test_config_overrides_task_and_num_labels() -> None:
    model = load_model(
        "hf:bert", device="meta", config=TINY["bert"], task="sequence-classification", num_labels=5
    )
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_hidden_layers == 2
    assert model.classifier.out_features == 5
    # gpt2 spells its fields n_layer/n_embd; the common names map onto them
    gpt2 = load_model("hf:gpt2", device="meta", config={"num_hidden_layers": 3})
    assert gpt2.config.n_layer == 3 and len(gpt2.transformer.h) == 3


def test_real_build_runs_a_forward() -> None:
    model = load_model("hf:llama", config=TINY["llama"])
    out = model(input_ids=torch.randint(0, 128, (2, 8)))
    assert out.logits.shape == (2, 8, 128)


@pytest.mark.parametrize(
    ("spec", "options", "match"),
    [
        ("hf:lama", {}, r"unknown model type 'lama'; did you mean hf:llama"),
        (
            "hf:bert-base-uncased",
            {},
            r"hf:bert-base-uncased is neither a local directory nor a model type; torchscope never downloads",
        ),
        (
            "hf:meta-llama/Llama-2-7b-hf",
            {},
            r"download it first \(hf download meta-llama/Llama-2-7b-hf --local-dir DIR\)",
        ),
        ("hf:", {}, r"malformed spec 'hf:'"),
        (
            "hf:gpt2",
            {"config": {"num_layerz": 2}},
            r"--config num_layerz: the gpt2 config has no field 'num_layerz'; did you mean 'n_layer'",
        ),
        ("hf:gpt2", {"task": "clasification"}, r"--task 'clasification' is not a task"),
        ("hf:clip", {"task": "causal-lm"}, r"hf:clip has no causal-lm head in transformers; use --task base"),
        ("hf:bert", {"num_labels": 3}, r"--num-labels only applies to classifiers"),
        (
            "hf:bert",
            {"task": "sequence-classification", "num_labels": 0},
            r"--num-labels 0 must be a positive integer",
        ),
        ("resnet18", {"config": {"x": 1}}, r"config= \(--config\) only applies to hf: models"),
        ("resnet18", {"task": "base"}, r"task= \(--task\) only applies to hf: models"),
    ],
)
def test_bad_input_is_one_spec_error(spec: str, options: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load_model(spec, device="meta", **options)


def test_a_directory_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(SpecError, match=r"has no config.json; give a transformers model directory"):
        load_model(f"hf:{tmp_path}", device="meta")


# ---------------------------------------------------------------------------------------------
# directories and safetensors weights


def test_directory_loads_the_saved_weights(tmp_path: Path) -> None:
    saved = save_tiny(tmp_path / "m")
    loaded = load_model(f"hf:{tmp_path / 'm'}")
    assert type(loaded).__name__ == "LlamaForCausalLM"
    assert _same_weights(saved, loaded)
    meta = load_model(f"hf:{tmp_path / 'm'}", device="meta")
    assert all(p.is_meta for p in meta.parameters())
    assert tree(meta).total_params == tree(loaded).total_params == saved.num_parameters()


def test_sharded_directory(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model("llama", **TINY["llama"])
    )
    model.save_pretrained(tmp_path / "m", max_shard_size="20KB")
    shards = sorted(p.name for p in (tmp_path / "m").glob("model-*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "m" / "model.safetensors.index.json").is_file()
    assert _same_weights(model, load_model(f"hf:{tmp_path / 'm'}"))


def test_weights_safetensors_on_a_model_type_keeps_tied_weights_tied(tmp_path: Path) -> None:
    saved = save_tiny(tmp_path / "g", "gpt2", auto="AutoModelForCausalLM")
    file = tmp_path / "g" / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        assert "lm_head.weight" not in f.keys()  # saved once, under the embedding's name
    model = load_model("hf:gpt2", config=TINY["gpt2"], weights=file)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert _same_weights(saved, model)
    x = torch.randint(0, 128, (1, 8))
    saved.eval()
    model.eval()
    assert torch.equal(saved(x).logits, model(x).logits)


def test_weights_safetensors_that_do_not_fit(tmp_path: Path) -> None:
    save_tiny(tmp_path / "g", "gpt2")
    with pytest.raises(SpecError, match=r"does not fit GPT2LMHeadModel: shape mismatch"):
        load_model(
            "hf:gpt2", config={**TINY["gpt2"], "n_embd": 64}, weights=tmp_path / "g" / "model.safetensors"
        )


@pytest.mark.slow  # spawns a process
@pytest.mark.slow
def test_cli_help_does_not_import_transformers_or_peft() -> None:
    code = "import sys; from torchscope.cli import main; sys.argv=['torchscope','--help']\ntry:\n main()\nexcept SystemExit: pass\nprint('transformers' in sys.modules, 'peft' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


# ---------------------------------------------------------------------------------------------
# adapters


def _adapter(
    tmp_path: Path, base: Path, *, target: tuple[str, ...] = ("q_proj", "v_proj"), **extra: object
) -> Path:
    torch.manual_seed(2)
    model = transformers.AutoModelForCausalLM.from_pretrained(base)
    peft_model = peft.get_peft_model(
        model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(target), task_type="CAUSAL_LM", **extra)
    )
    with torch.no_grad():  # lora_B starts at zero; make the adapter do something
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    out = tmp_path / "adapter"
    peft_model.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base)
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def test_adapter_directory_on_its_base(tmp_path: Path) -> None:
    save_tiny(tmp_path / "base")
    adapter = _adapter(tmp_path, tmp_path / "base")
    model = load_model(f"hf:{adapter}")
    assert type(model).__name__ == "PeftModelForCausalLM"
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable and all("lora_" in n for n in trainable)  # adapters trainable, base frozen
    expected = peft.PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base"), adapter
    )
    x = torch.randint(0, 128, (1, 8))
    model.eval()
    expected.eval()
    assert torch.equal(model(x).logits, expected(x).logits)
    meta = load_model(f"hf:{adapter}", device="meta")
    assert all(p.is_meta for p in meta.parameters())
    assert meta.get_nb_trainable_parameters() == model.get_nb_trainable_parameters()


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_adapter_on_a_base_that_does_not_match(tmp_path: Path, device: str) -> None:
    save_tiny(tmp_path / "base")
    adapter = _adapter(tmp_path, tmp_path / "base")
    save_tiny(tmp_path / "wider", hidden_size=64)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "wider")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(
        SpecError, match=r"the adapter in .* does not fit the base .*wider: .*give the base it was trained on"
    ):
        load_model(f"hf:{adapter}", device=device)


def test_adapter_whose_base_is_a_hub_id(tmp_path: Path) -> None:
    save_tiny(tmp_path / "base")
    adapter = _adapter(tmp_path, tmp_path / "base")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "meta-llama/Llama-2-7b-hf"
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(
        SpecError,
        match=r"is for base 'meta-llama/Llama-2-7b-hf', which is not a local directory; torchscope never downloads",
    ):
        load_model(f"hf:{adapter}", device="meta")


def test_a_saved_classifier_gets_a_new_number_of_labels(tmp_path: Path) -> None:
    saved = save_tiny(tmp_path / "clf", "bert", auto="AutoModelForSequenceClassification", num_labels=2)
    model = load_model(f"hf:{tmp_path / 'clf'}", num_labels=7)
    assert type(model).__name__ == "BertForSequenceClassification"  # from the directory's architectures
    assert model.classifier.out_features == 7
    # the encoder is the saved one; only the new head is fresh
    assert torch.equal(
        model.bert.embeddings.word_embeddings.weight, saved.bert.embeddings.word_embeddings.weight
    )
    with pytest.raises(SpecError, match=r"--num-labels only applies to classifiers"):
        load_model(f"hf:{tmp_path / 'clf'}", num_labels=7, task="base")


def test_transformers_logging_and_environment_are_left_as_found(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    logging = transformers.logging
    logging.set_verbosity_info()
    logging.enable_progress_bar()
    try:
        load_model("hf:gpt2", device="meta", config=TINY["gpt2"])
        assert logging.get_verbosity() == logging.INFO and logging.is_progress_bar_enabled()
        assert "HF_HUB_OFFLINE" not in os.environ
    finally:
        logging.set_verbosity_warning()
