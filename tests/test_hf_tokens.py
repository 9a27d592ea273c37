"""Token inputs: ids below the vocab, an all-ones mask, the seed; exact MACs of gpt2 and bert."""

from __future__ import annotations

import json

import pytest
import torch
from hf_tiny import TINY
from typer.testing import CliRunner

from torchscope import load_model, summary
from torchscope._inputs import prepare_call
from torchscope._tokens import is_causal_lm, is_token_model, own_loss, token_batch
from torchscope.cli import app
from torchscope.errors import SpecError

runner = CliRunner()
TINY_LLAMA = [f"--config={k}={v}" for k, v in TINY["llama"].items()]


def test_prepare_call_gives_a_language_model_token_ids_and_a_mask() -> None:
    model = load_model("hf:llama", config=TINY["llama"])
    assert is_token_model(model) and is_causal_lm(model)
    torch.manual_seed(3)
    args, kw = prepare_call(model, input_size=(2, 64))
    assert args == () and sorted(kw) == ["attention_mask", "input_ids"]
    ids = kw["input_ids"]
    assert ids.dtype == torch.int64 and ids.shape == (2, 64)
    assert int(ids.min()) >= 0 and int(ids.max()) < 128
    assert len(ids.unique()) > 32  # drawn over the whole vocab, not 0/1
    assert torch.equal(kw["attention_mask"], torch.ones(2, 64, dtype=torch.int64))
    torch.manual_seed(3)
    assert torch.equal(prepare_call(model, input_size=(2, 64))[1]["input_ids"], ids)  # the seed decides
    # an explicit integer dtype is kept; a float dtype means the user wants float inputs
    assert prepare_call(model, input_size=(2, 8), dtype="int32")[1]["input_ids"].dtype == torch.int32
    assert prepare_call(model, input_size=(2, 8), dtype="float32")[0][0].dtype == torch.float32


def test_labels_for_each_head() -> None:
    lm = load_model("hf:llama", config=TINY["llama"])
    batch = token_batch(lm, (2, 8), labels=True)
    assert torch.equal(batch["labels"], batch["input_ids"])  # the model shifts them: its own loss
    out = lm(**batch)
    assert own_loss(out) is out.loss and out.loss.requires_grad
    clf = load_model("hf:bert", config=TINY["bert"], task="sequence-classification", num_labels=3)
    labels = token_batch(clf, (4, 8), labels=True)["labels"]
    assert labels.shape == (4,) and int(labels.max()) < 3
    tok = load_model("hf:bert", config=TINY["bert"], task="token-classification", num_labels=5)
    assert token_batch(tok, (2, 8), labels=True)["labels"].shape == (2, 8)


def test_token_batch_errors() -> None:
    with pytest.raises(
        SpecError, match=r"Linear has no config.vocab_size; token inputs need a language model"
    ):
        token_batch(torch.nn.Linear(2, 2), (2, 8))
    model = load_model("hf:llama", config=TINY["llama"], device="meta")
    with pytest.raises(SpecError, match=r"token input size \(1, 2, 8\) must be \(batch, length\)"):
        token_batch(model, (1, 2, 8))
    with pytest.raises(SpecError, match=r"token ids need an integer dtype, not float32; use long"):
        token_batch(model, (2, 8), dtype=torch.float32)


def _macs(
    vocab: int, d: int, layers: int, ff: int, tokens: int, *, qkv: int, pooler: bool, lm_head: bool
) -> int:
    """Analytic mult-adds of a transformer forward on one sequence of ``tokens`` tokens.

    The 2·N rule: every weight of a matmul does one multiply-add per token (embedding lookups do
    none), so linear layers cost tokens x (their weights); attention adds QKᵀ and AV, each
    tokens² x d per layer (the full square: the models compute it before masking).

    per layer weights = qkv·d (the q/k/v projections) + d·d (output) + 2·d·ff (the MLP)
    total = tokens·layers·(per layer weights) + layers·2·tokens²·d
            + tokens·d·vocab (LM head) + d·d (pooler, on the first token only)
    """
    per_layer = qkv * d + d * d + 2 * d * ff
    total = tokens * layers * per_layer + layers * 2 * tokens * tokens * d
    if lm_head:
        total += tokens * d * vocab
    if pooler:
        total += d * d
    return total


@pytest.mark.parametrize(
    ("spec", "tokens", "expected"),
    [
        ("hf:gpt2", 1024, _macs(50257, 768, 12, 3072, 1024, qkv=3 * 768, pooler=False, lm_head=True)),
        ("hf:bert", 512, _macs(30522, 768, 12, 3072, 512, qkv=3 * 768, pooler=True, lm_head=False)),
    ],
)
def test_summary_macs_match_the_analytic_count(spec: str, tokens: int, expected: int) -> None:
    data = summary(load_model(spec, device="meta"), input_size=(1, tokens))
    assert not data.mult_adds_lower_bound
    assert abs(data.total_mult_adds - expected) / expected < 0.02, (data.total_mult_adds, expected)


def test_cli_token_inputs_in_summary_and_activations() -> None:
    res = runner.invoke(app, ["summary", "hf:llama", *TINY_LLAMA, "--tokens", "2x16", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["model"] == "LlamaForCausalLM" and data["total_mult_adds"] > 0
    res = runner.invoke(
        app,
        ["activations", "hf:llama", *TINY_LLAMA, "--input-size", "2,16", "--input-dtype", "long", "--json"],
    )
    assert res.exit_code == 0, res.output
    calls = json.loads(res.output)["calls"]
    assert any(c["module"] == "model.embed_tokens" for c in calls)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["tree", "hf:bert-base-uncased"], "torchscope never downloads: download it first"),
        (["tree", "hf:lama"], "unknown model type 'lama'; did you mean hf:llama"),
        (["tree", "hf:gpt2", "--config", "n_layerz=2"], "the gpt2 config has no field 'n_layerz'"),
        (["tree", "hf:gpt2", "--config", "n_layer"], "--config 'n_layer' must look like key=value"),
        (["tree", "resnet18", "--task", "base"], r"only applies to hf: models"),
    ],
)
def test_cli_bad_hf_input_exits_2_with_one_line(args: list[str], match: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and match in lines[0], res.output


def test_check_freeze_on_a_causal_lm_uses_its_own_loss() -> None:
    from torchscope import check_freeze, freeze

    model = load_model("hf:llama", config=TINY["llama"])
    freeze(model, "model.embed_tokens", "model.layers.0.*")
    report = check_freeze(model, input_size=(2, 16), mode="fingerprint")
    assert report.ok, report.to_dict()["violations"]
    assert report.frozen_params == 10 and report.trainable_params == 11
    # the step's loss is the model's next-token loss: labels are the input ids
    batch = token_batch(model, (2, 16), labels=True)
    assert float(model(**batch).loss) > 0


def test_cli_check_freeze_on_a_classifier_and_a_bad_freeze() -> None:
    args = ["check-freeze", "hf:bert", *[f"--config={k}={v}" for k, v in TINY["bert"].items()]]
    args += ["--task", "sequence-classification", "--num-labels", "3", "--tokens", "2x16"]
    ok = runner.invoke(app, [*args, "--freeze-backbone", "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["ok"] and data["trainable_params"] == 2  # classifier weight and bias
    # a base model without a head: no labels to give it, the generic synthetic loss is used
    base = runner.invoke(
        app, ["check-freeze", "hf:bert", *args[2:-6], "--freeze", "embeddings", "--tokens", "2x16"]
    )
    assert base.exit_code == 0, base.output


def test_hf_models_default_to_128_tokens() -> None:
    from torchscope._loader import default_input_size

    assert default_input_size("hf:llama", batch=2) == (2, 128)
    res = runner.invoke(app, ["summary", "hf:llama", *TINY_LLAMA, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["inputs"][0]["shape"] == [1, 128]
