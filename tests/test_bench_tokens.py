"""``bench`` on language models: token batches, the model's own loss, tokens/s, what frozen mode trains.

Tiny ``hf:`` configs (a few thousand params), one or two steps a window: each test takes seconds.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
import torch
from conftest import CliRun
from hf_tiny import TINY
from rich.console import Console

from torchscope import load_model
from torchscope._bench.lm import TokenBatches, TokenLoss, freeze_lm
from torchscope._bench.loops import TrainStep, harness_window, make_optimizer, token_baseline_window
from torchscope._bench.run import bench
from torchscope._bench.schema import BenchResult
from torchscope._tokens import token_batch
from torchscope.render.bench import render_bench

# no dropout: two runs of the same step on the same batch must give the same numbers
GPT2 = {**TINY["gpt2"], "attn_pdrop": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0}
BERT = {**TINY["bert"], "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
QUICK = ["--window-steps", "1", "--windows", "2", "--warmup", "1", "--device", "cpu", "--no-progress"]
QUICK_KW: dict[str, Any] = dict(device="cpu", steps=1, windows=2, warmup=1, measure_peak=False)


def _config_args(config: dict[str, Any]) -> list[str]:
    return [f"--config={k}={v}" for k, v in config.items()]


def _params(model: torch.nn.Module, prefixes: tuple[str, ...]) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefixes))


def test_cli_causal_lm_reports_tokens_per_second_and_trains_the_top_when_frozen(cli: CliRun) -> None:
    res = cli("bench", "--model", "hf:gpt2", *_config_args(GPT2), "--tokens", "2x16", *QUICK, "--json")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["ok"] is True
    cfg = data["config"]
    assert (cfg["batch_size"], cfg["seq_len"], cfg["token_dtype"]) == (2, 16, "int64")
    assert cfg["hf_config"] == GPT2 and cfg["image_size"] is None and cfg["num_classes"] is None
    model = load_model("hf:gpt2", config=GPT2)
    total = sum(p.numel() for p in model.parameters())  # no head swap: the model's own params
    frozen, full = data["modes"]
    for m in (frozen, full):
        timing = m["harness"]
        assert timing["unit"] == "tokens" and timing["images_per_step"] == 2 * 16
        # the rate counts tokens: steps x batch x length / window time
        rates = [1 * 32 / t for t in timing["window_s"]]
        assert timing["summary"]["img_s_min"] == pytest.approx(min(rates))
        assert m["baseline"]["unit"] == "tokens" and m["check"]["ok"] is True
        assert m["total_params"] == total
    assert frozen["head"] == "transformer.h.1, transformer.ln_f"
    assert frozen["trainable_params"] == _params(model, ("transformer.h.1.", "transformer.ln_f."))
    # lm_head is tied to wte: frozen with it, updated in full mode
    assert frozen["check"]["report"]["frozen_params"] > 0
    assert full["head"] == "lm_head" and full["trainable_params"] == total


def test_cli_sequence_classifier_trains_its_head_on_random_labels(cli: CliRun) -> None:
    res = cli(
        "bench", "--model", "hf:bert", "--task", "sequence-classification", "--num-labels", "3",
        *_config_args(BERT), "--tokens", "4x8", "--finetune", "frozen", *QUICK, "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    (m,) = json.loads(res.stdout)["modes"]
    assert m["head"] == "classifier" and m["trainable_params"] == 32 * 3 + 3
    assert m["harness"]["images_per_step"] == 4 * 8 and m["check"]["ok"] is True


def test_cli_renders_tokens_per_second(cli: CliRun) -> None:
    res = cli(
        "bench", "-m", "hf:gpt2", *_config_args(GPT2), "--tokens", "2x8", "--finetune", "full", "--no-baseline",
        "--no-check", *QUICK,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "tokens/s (median)" in res.stdout and "img/s" not in res.stdout
    assert "8 tokens (int64 ids below the vocab size, from seed 0)" in res.stdout


def test_library_default_length_round_trip_and_render() -> None:
    r = bench(
        "hf:gpt2",
        hf_config={**GPT2, "n_positions": 128},
        mode="frozen",
        batch_size=1,
        baseline=False,
        check=False,
        **QUICK_KW,
    )
    assert r.config.seq_len == 128 and r.mode("frozen").harness.images_per_step == 128
    back = BenchResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and back.config.hf_config == tuple({**GPT2, "n_positions": 128}.items())
    console = Console(width=120, color_system=None, record=True)
    console.print(render_bench(back))
    assert "tokens/s per window" in console.export_text()


def test_token_batches_are_check_freezes_and_the_loss_is_the_models_own() -> None:
    model = load_model("hf:gpt2", config=GPT2)
    (batch,) = TokenBatches(model, torch.device("cpu"), 2, 16, torch.int64, seed=5).next()
    # the one token generator, drawn from the seed: ids below the vocab, all-ones mask, labels = ids
    same = token_batch(model, (2, 16), generator=torch.Generator().manual_seed(5), labels=True)
    assert batch.keys() == same.keys() and all(torch.equal(batch[k], same[k]) for k in batch)
    assert torch.equal(batch["labels"], batch["input_ids"]) and int(batch["input_ids"].max()) < 128
    ids = batch["input_ids"]
    assert torch.equal(TokenLoss(0)(model, batch), model(ids, labels=ids).loss)
    clf = load_model("hf:bert", config=BERT, task="sequence-classification", num_labels=3)
    (cb,) = TokenBatches(clf, torch.device("cpu"), 4, 8, torch.int64, seed=1).next()
    logits = clf(input_ids=cb["input_ids"], attention_mask=cb["attention_mask"]).logits
    expected = torch.nn.functional.cross_entropy(logits, cb["labels"])
    assert cb["labels"].shape == (4,) and torch.allclose(TokenLoss(0)(clf, cb), expected)


def test_harness_and_baseline_train_alike_on_the_same_batch() -> None:
    torch.manual_seed(0)
    a = load_model("hf:gpt2", config=GPT2)
    freeze_lm(a)
    b = copy.deepcopy(a)
    before = {n: p.detach().clone() for n, p in a.named_parameters()}
    batches = TokenBatches(a, torch.device("cpu"), 2, 8, torch.int64, seed=0)
    opt_a = make_optimizer("sgd", [p for p in a.parameters() if p.requires_grad], 0.1)
    opt_b = make_optimizer("sgd", [p for p in b.parameters() if p.requires_grad], 0.1)
    harness_window(TrainStep(a, TokenLoss(0), opt_a, None, torch.device("cpu"), None), batches, 2)
    token_baseline_window(b, opt_b, None, batches.next()[0], torch.device("cpu"), None, 2)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    moved = {n for n in pa if not torch.equal(pa[n], before[n])}
    assert moved == {n for n, p in pa.items() if p.requires_grad} and moved  # the top trained, nothing else
    for name in pa:
        assert torch.allclose(pa[name], pb[name], atol=1e-6), name


def test_frozen_lm_trains_only_the_last_block_and_final_norm() -> None:
    llama = load_model("hf:llama", config=TINY["llama"])
    assert freeze_lm(llama) == "model.layers.1, model.norm"
    trainable = {n for n, p in llama.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.layers.1.", "model.norm.")) for n in trainable)
    assert not llama.lm_head.weight.requires_grad and not llama.model.embed_tokens.weight.requires_grad


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--tokens", "2x3x4"], "--tokens '2x3x4' must be BATCHxLENGTH, e.g. 4x128"),
        (["--tokens", "2x8", "-b", "4"], "--tokens '2x8' with --batch-size 4: --tokens is then one sample's LENGTH"),
        (["--tokens", "2x8", "--image-size", "32"], "--image-size is for image models"),
        (["--tokens", "2x8", "--num-classes", "3"], "--num-classes is for image models.*--num-labels"),
        (["--tokens", "2x8", "--input-dtype", "float32"], "--dtype 'float32'.*use long"),
        (["--image-size", "32"], "--image-size is for image models"),
    ],
)
def test_cli_bad_token_options_exit_2(cli: CliRun, args: list[str], match: str) -> None:
    res = cli("bench", "-m", "hf:gpt2", *_config_args(GPT2), *args, *QUICK)
    assert res.exit_code == 2, res.stdout
    assert len(res.stderr.strip().splitlines()) == 1
    assert re.search(match, res.stderr), res.stderr


def test_cli_hf_options_on_other_models_and_base_models_exit_2(cli: CliRun) -> None:
    res = cli("bench", "-m", "hf:gpt2", *_config_args(GPT2), "--tokens", "1x100", *QUICK)
    assert res.exit_code == 2
    assert (
        "sequences of 100 tokens are longer than the model's 64 positions (max_position_embeddings)"
        in res.stderr
    )
    res = cli("bench", "-m", "resnet18", "--config", "a=1", *QUICK)
    assert res.exit_code == 2 and "--config/--task/--num-labels apply to hf: models" in res.stderr
    res = cli("bench", "-m", "hf:bert", *_config_args(BERT), "--tokens", "2x8", *QUICK)
    assert res.exit_code == 2
    assert (
        "BertModel has no head, so no loss to train on; bench an hf: model with --task causal-lm"
        in res.stderr
    )


def test_batch_size_auto_searches_token_batches() -> None:
    def probe(b: int) -> None:
        if b > 3:
            raise torch.OutOfMemoryError("fake: more than 3 sequences")

    r = bench(
        "hf:gpt2", hf_config=GPT2, seq_len=8, batch_size="auto", max_batch_size=8, mode="frozen",
        baseline=False, check=False, oom_probe=probe, **QUICK_KW,
    )  # fmt: skip
    m = r.mode("frozen")
    assert m.batch_size == 3 and m.harness.images_per_step == 3 * 8 and r.config.max_batch_size == 8
