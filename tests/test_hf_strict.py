"""``hf:`` models: the meta path as strict as a real run, one mode on every device, bad configs exit 2, bounded builds.

Directories are tiny models saved with ``save_pretrained`` (never a hub id). Each damaged directory
is tried as a user would (``torchscope tree hf:DIR --device meta``, then ``--device cpu``): the same
one line on both devices, exit 2, nothing on stdout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from hf_tiny import TINY, save_tiny, transformers

from torchscope import TorchscopeError, load_model, tree
from torchscope._loader import hf_size

DEVICES = ["meta", "cpu"]


class _Calls:
    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def one_line_exit_2(result: object) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stderr)  # type: ignore[attr-defined]
    assert result.stdout == "", result.stdout  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good tiny Llama, a tiny BERT saved as a masked LM, and damaged copies of the Llama."""
    root = tmp_path_factory.mktemp("hf")
    out = {"llama": root / "llama", "bert-mlm": root / "bert-mlm", "sharded": root / "sharded"}
    save_tiny(out["llama"], "llama")
    save_tiny(out["bert-mlm"], "bert", "AutoModelForMaskedLM")
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model("llama", **TINY["llama"])
    ).save_pretrained(out["sharded"], max_shard_size="40KB")
    weights = (out["llama"] / "model.safetensors").read_bytes()

    def copy(name: str, source: str = "llama") -> Path:
        out[name] = root / name
        shutil.copytree(out[source], out[name])
        return out[name]

    (copy("truncated") / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    from safetensors.torch import save_file

    save_file({"foo.weight": torch.zeros(3, 3)}, str(copy("wrong-keys") / "model.safetensors"))
    index = copy("missing-shard", "sharded") / "model.safetensors.index.json"
    shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    assert len(shards) >= 2
    (out["missing-shard"] / shards[-1]).unlink()
    index = copy("index-lies", "sharded") / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["model.embed_tokens.weight"] = shards[-1] if data["weight_map"]["model.embed_tokens.weight"] != shards[-1] else shards[0]
    index.write_text(json.dumps(data))
    state = transformers.AutoModelForCausalLM.from_pretrained(str(out["llama"])).state_dict()
    (copy("bin") / "model.safetensors").unlink()
    torch.save(state, out["bin"] / "pytorch_model.bin")
    (copy("bin-wrong-keys", "bin") / "pytorch_model.bin").unlink()
    torch.save({"foo.weight": torch.zeros(3)}, out["bin-wrong-keys"] / "pytorch_model.bin")
    (copy("bin-code", "bin") / "pytorch_model.bin").unlink()
    torch.save({**state, "x": _Calls(os.system, "true")}, out["bin-code"] / "pytorch_model.bin")
    (copy("index-not-json", "sharded") / "model.safetensors.index.json").write_text("{not json")
    (copy("config-not-json") / "config.json").write_text("{not json")
    config = json.loads((out["llama"] / "config.json").read_text())
    (copy("config-wrong-type") / "config.json").write_text(json.dumps({**config, "hidden_size": "abc"}))
    (copy("config-negative-layers") / "config.json").write_text(json.dumps({**config, "num_hidden_layers": -1}))
    return out


DAMAGED = {
    "truncated": r"model\.safetensors: tensor '.+' lies outside the file \(truncated\?",
    "wrong-keys": r"do not fit LlamaForCausalLM: 21 of its 21 keys are not in the file .* it holds keys the model does not have: \[foo\.weight\]",
    "missing-shard": r"model\.safetensors\.index\.json names shard 'model-0000\d-of-0000\d\.safetensors', which is not in",
    "index-lies": r"puts 'model\.embed_tokens\.weight' in model-0000\d-of-0000\d\.safetensors, which does not hold it",
    "index-not-json": r"model\.safetensors\.index\.json does not load \(JSONDecodeError\); copy the directory again",
    "bin-wrong-keys": r"bin-wrong-keys do not fit LlamaForCausalLM: 21 of its 21 keys are not in the file .*\[foo\.weight\]",
    "bin-code": r"pytorch_model\.bin contains code: its pickle calls posix\.system when it is loaded",
    "config-not-json": r"config\.json does not load: OSError: .*not a valid JSON file; fix the file",
    "config-wrong-type": r"config\.json does not load: TypeError: Field 'hidden_size' expected int, got str \(value: 'abc'\); fix the file",
    "config-negative-layers": r"config\.json num_hidden_layers=-1: a layer count must be a whole number >= 1; give --config num_hidden_layers=N",
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_directory_is_refused_on_meta_with_the_cpus_words(cli, dirs: dict[str, Path], case: str) -> None:
    lines = [one_line_exit_2(cli("tree", f"hf:{dirs[case]}", "--device", device)) for device in DEVICES]
    assert re.search(DAMAGED[case], lines[0]), lines[0]
    assert lines[0] == lines[1]  # the same verdict, word for word


@pytest.mark.parametrize(
    ("name", "task", "config"),
    [
        ("llama", None, {}),
        ("sharded", None, {}),
        ("wrong-keys", None, {}),
        ("bert-mlm", None, {}),
        ("bert-mlm", "sequence-classification", {}),
        ("bert-mlm", "base", {}),
        ("llama", "base", {}),
        ("llama", None, {"num_hidden_layers": 1}),
        ("llama", None, {"num_hidden_layers": 3}),
        ("llama", None, {"hidden_size": 64, "intermediate_size": 32}),
        ("gpt2", None, {}),
        ("bin", None, {}),
        ("bin-wrong-keys", None, {}),
    ],
)
def test_the_meta_match_agrees_with_from_pretrained(
    dirs: dict[str, Path], tmp_path: Path, name: str, task: str | None, config: dict[str, int]
) -> None:
    """What fit_on_meta finds from the headers is what transformers' own load reports, key for key."""
    from torchscope._loader.hf_weights import file_shapes, fit_from_info, fit_on_meta

    path = dirs.get(name) or tmp_path / name
    if not path.exists():
        save_tiny(path, name)
    auto = {"sequence-classification": transformers.AutoModelForSequenceClassification, "base": transformers.AutoModel}
    hf_config = transformers.AutoConfig.from_pretrained(str(path), **config)
    cls = auto.get(task or "") or getattr(transformers, hf_config.architectures[0])
    real, info = cls.from_pretrained(str(path), config=hf_config, output_loading_info=True, ignore_mismatched_sizes=True)
    with torch.device("meta"):
        meta = (getattr(cls, "from_config", None) or cls)(hf_config)
    ours, theirs = fit_on_meta(meta, file_shapes(path) or {}), fit_from_info(real, info)
    assert set(ours.missing) == set(theirs.missing)
    assert set(ours.unexpected) == set(theirs.unexpected)
    assert {m[0]: m[1:] for m in ours.mismatched} == {m[0]: tuple(map(tuple, m[1:])) for m in theirs.mismatched}


def test_good_directories_load_on_both_devices(dirs: dict[str, Path]) -> None:
    expected = {"llama": "LlamaForCausalLM", "sharded": "LlamaForCausalLM", "bert-mlm": "BertForMaskedLM", "bin": "LlamaForCausalLM"}
    for name, cls in expected.items():
        for device in DEVICES:
            model = load_model(f"hf:{dirs[name]}", device=device)
            assert type(model).__name__ == cls, (name, device)


def test_another_head_on_a_saved_model_is_a_new_head_not_an_error(dirs: dict[str, Path]) -> None:
    """A masked-LM checkpoint under a classifier: the head (and BERT's pooler) are new, the body loads."""
    for device in DEVICES:
        model = load_model(f"hf:{dirs['bert-mlm']}", device=device, task="sequence-classification", num_labels=3)
        assert model.classifier.out_features == 3
    real = load_model(f"hf:{dirs['bert-mlm']}", task="sequence-classification", num_labels=3)
    saved = transformers.AutoModelForMaskedLM.from_pretrained(str(dirs["bert-mlm"]))
    assert torch.equal(real.bert.embeddings.word_embeddings.weight, saved.bert.embeddings.word_embeddings.weight)


@pytest.mark.parametrize(
    ("override", "verdict"),
    [
        ("num_hidden_layers=1", None),  # fewer layers than saved: the rest of the file is unused
        ("num_hidden_layers=3", r"9 of its 30 keys are not in the file \(\[model\.layers\.2\.self_attn\.q_proj\.weight, "),
        ("hidden_size=64", r"shape mismatch at \[model\.embed_tokens\.weight \[128, 32\] vs \[128, 64\]"),
    ],
)
def test_config_overrides_that_change_the_architecture(cli, dirs: dict[str, Path], override: str, verdict: str | None) -> None:
    results = [cli("tree", f"hf:{dirs['llama']}", "--config", override, "--device", d, "--json") for d in DEVICES]
    if verdict is None:
        assert [r.exit_code for r in results] == [0, 0]
        return
    lines = [one_line_exit_2(r) for r in results]
    assert lines[0] == lines[1] and re.search(verdict, lines[0]), lines[0]


def test_the_mode_is_the_same_on_every_device(cli, dirs: dict[str, Path]) -> None:
    """A directory is loaded (eval, as from_pretrained leaves it); a model type is built (train, as from_config)."""
    for spec, extra, mode in [
        (f"hf:{dirs['llama']}", [], "eval"),
        (f"hf:{dirs['sharded']}", [], "eval"),
        (f"hf:{dirs['bert-mlm']}", ["--task", "sequence-classification"], "eval"),
        ("hf:llama", [f"--config={k}={v}" for k, v in TINY["llama"].items()], "train"),
    ]:
        counts = []
        for device in DEVICES:
            data = json.loads(cli("tree", spec, *extra, "--device", device, "--json").stdout)
            counts.append((data["modules_in_train_mode"], data["modules_in_eval_mode"]))
        assert counts[0] == counts[1], spec
        assert (counts[0][0] == 0) == (mode == "eval") and (counts[0][1] == 0) == (mode == "train"), (spec, counts)


# ---------------------------------------------------------------------------------------------
# configs that transformers rejects


CONFIG_CASES = [
    (["hf:llama", "--config", "hidden_size=-1"], r"--config values do not make a llama config: ValueError: The hidden size \(-1\) is not a multiple of the number of attention heads \(32\); fix the --config values"),
    (["hf:llama", "--config", "hidden_size=30", "--config", "num_attention_heads=4"], r"The hidden size \(30\) is not a multiple of the number of attention heads \(4\)"),
    (["hf:llama", "--config", "hidden_size='abc'"], r"TypeError: Field 'hidden_size' expected int, got str \(value: 'abc'\); fix the --config values"),
    (["hf:llama", "--config", "num_hidden_layers=-1"], r"--config num_hidden_layers=-1: a layer count must be a whole number >= 1; give --config num_hidden_layers=N with N >= 1"),
    (["hf:llama", "--config", "num_hidden_layers=0"], r"--config num_hidden_layers=0: a layer count must be a whole number >= 1"),
    (["hf:gpt2", "--config", "n_layer=-1"], r"--config n_layer=-1: a layer count must be"),
    (["hf:gpt2", "--config", "num_hidden_layers=-2"], r"--config num_hidden_layers=-2: a layer count must be"),
    (["hf:t5", "--config", "num_decoder_layers=-1"], r"--config num_decoder_layers=-1: a layer count must be a whole number >= 1"),
    (["hf:llama", "--config", "num_hidden_layers=2.5"], r"Field 'num_hidden_layers' expected int, got float \(value: 2\.5\)"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "match"), CONFIG_CASES)
@pytest.mark.parametrize("device", DEVICES)
def test_config_values_transformers_rejects_are_exit_2(cli, args: list[str], match: str, device: str) -> None:
    line = one_line_exit_2(cli("tree", *args, "--device", device))
    assert re.search(match, line), line


def test_a_bad_override_on_a_directory(cli, dirs: dict[str, Path]) -> None:
    for args, match in [
        (["--config", "hidden_size='abc'"], r"--config hidden_size='abc': TypeError: Field 'hidden_size' expected int"),
        (["--config", "hidden_size=30"], r"with the --config values is not a valid config: ValueError: The hidden size \(30\) is not a multiple"),
        (["--config", "num_hidden_layers=-1"], r"--config num_hidden_layers=-1: a layer count must be"),
    ]:  # fmt: skip
        for device in DEVICES:
            assert re.search(match, one_line_exit_2(cli("tree", f"hf:{dirs['llama']}", *args, "--device", device)))


def test_a_safetensors_error_from_transformers_is_exit_2(cli, dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a file pass our header check and fail in safetensors' own reader, it is still bad input."""
    from torchscope._loader import hf

    monkeypatch.setattr(hf, "file_shapes", lambda path, unsafe_load: {})  # our check out of the way
    line = one_line_exit_2(cli("tree", f"hf:{dirs['truncated']}", "--device", "cpu"))
    assert "do not load into LlamaForCausalLM: SafetensorError: Error while deserializing header" in line


# ---------------------------------------------------------------------------------------------
# bounded


def test_a_million_layers_is_refused_with_the_figures_and_the_way_out(cli) -> None:
    for device in DEVICES:
        line = one_line_exit_2(cli("tree", "hf:llama", "--config", "num_hidden_layers=1000000", "--device", device))
        assert re.search(
            r"hf:llama would build about 13,000,\d{3} modules and 202\.4 T params: 13 modules and 202\.4 M params "
            r"a layer, 1,000,000 layers; that is more than torchscope's limit of 100,000 modules: give fewer "
            r"layers, e\.g\. --config num_hidden_layers=7691$",
            line,
        ), line


@pytest.mark.parametrize(("spec", "field"), [("hf:llama", "num_hidden_layers"), ("hf:gpt2", "n_layer"), ("hf:t5", "num_layers"), ("hf:gemma3_text", "num_hidden_layers")])
def test_the_suggested_layer_count_fits_and_one_more_does_not(
    monkeypatch: pytest.MonkeyPatch, spec: str, field: str
) -> None:
    """The estimate is exact: with a limit of 300 modules, the suggested N builds at most 300, N+1 more."""
    monkeypatch.setattr(hf_size, "MAX_MODULES", 300)
    with pytest.raises(TorchscopeError, match=rf"e\.g\. --config {field}=(\d+)$") as refused:
        load_model(spec, device="meta", config={field: 10_000})
    fits = int(re.search(rf"{field}=(\d+)$", str(refused.value)).group(1))  # type: ignore[union-attr]
    monkeypatch.setattr(hf_size, "MAX_MODULES", 10**9)
    built = sum(1 for _ in load_model(spec, device="meta", config={field: fits}).modules())
    bigger = sum(1 for _ in load_model(spec, device="meta", config={field: fits + 1}).modules())
    assert built <= 300 < bigger, (fits, built, bigger)


def test_weights_bigger_than_the_device_are_refused_before_building(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf_size, "_device_memory", lambda device: 64 << 10)  # a 64 KiB machine
    args = ["tree", "hf:llama", *[f"--config={k}={v}" for k, v in TINY["llama"].items()]]
    line = one_line_exit_2(cli(*args, "--device", "cpu"))
    # 26,784 float32 params: 104.6 KiB
    assert "hf:llama would take about 104.6 KiB of params on cpu, more than its 64.0 KiB of memory" in line
    assert line.endswith("use --device meta, or fewer layers (--config num_hidden_layers=N)")
    assert cli(*args, "--device", "meta").exit_code == 0  # meta holds no bytes


def test_the_tree_of_the_default_model_is_unchanged() -> None:
    """The estimate costs nothing where it is not needed, and changes no count."""
    data = tree(load_model("hf:llama", device="meta"))
    assert data.total_params == 6_738_415_616


@pytest.fixture(scope="module")
def adapters(dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    peft = pytest.importorskip("peft")
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("adapters")
    base = transformers.AutoModelForCausalLM.from_pretrained(str(dirs["llama"]))
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    good = root / "good"
    lora.save_pretrained(good)
    config = json.loads((good / "adapter_config.json").read_text())
    (good / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(dirs["llama"])}))
    out = {"good": good}
    for name in ("truncated", "wrong-keys"):
        out[name] = root / name
        shutil.copytree(good, out[name])
    raw = (good / "adapter_model.safetensors").read_bytes()
    (out["truncated"] / "adapter_model.safetensors").write_bytes(raw[: len(raw) // 2])
    save_file({"base_model.model.nothing.lora_A.weight": torch.zeros(4, 32)}, str(out["wrong-keys"] / "adapter_model.safetensors"))
    return out


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("truncated", r"adapter_model\.safetensors: tensor '.+' lies outside the file \(truncated\?"),
        ("wrong-keys", r"does not fit the base .*: no module for base_model\.model\.nothing\.lora_A\.weight"),
    ],
)
def test_a_damaged_adapter_is_refused_on_meta_with_the_cpus_words(cli, adapters: dict[str, Path], case: str, match: str) -> None:
    lines = [one_line_exit_2(cli("tree", f"hf:{adapters[case]}", "--device", device)) for device in DEVICES]
    assert re.search(match, lines[0]), lines[0]
    assert lines[0] == lines[1]


def test_an_adapter_is_in_eval_mode_on_every_device(adapters: dict[str, Path]) -> None:
    for device in DEVICES:
        model = load_model(f"hf:{adapters['good']}", device=device)
        assert not any(m.training for m in model.modules())
        assert any(p.requires_grad for p in model.parameters())  # loaded trainable all the same


def test_the_memory_check_counts_the_dtype_the_directory_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bf16 directory loads in bf16 (52.3 KiB here): a machine that fits that is not refused for the fp32 build."""
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model("llama", **TINY["llama"]))
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    monkeypatch.setattr(hf_size, "_device_memory", lambda device: 80 << 10)
    loaded = load_model(f"hf:{tmp_path / 'bf16'}", device="cpu")
    assert next(loaded.parameters()).dtype == torch.bfloat16
    with pytest.raises(TorchscopeError, match=r"would take about 104\.6 KiB of params on cpu, more than its 80\.0 KiB"):
        load_model("hf:llama", device="cpu", config=TINY["llama"])
