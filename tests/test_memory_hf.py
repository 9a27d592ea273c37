"""estimate_memory on Hugging Face models (the hf: loader): a tiny Llama against a real CPU step, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

import torchscope
from torchscope._memory.step import StepConfig
from torchscope._memory.truth import measured_peak

pytest.importorskip("transformers")

TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
}


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_tiny_llama_prediction_matches_a_real_cpu_step(amp: str) -> None:
    torch.manual_seed(0)
    model = torchscope.load_model("hf:llama", device="cpu", config=TINY)
    report = torchscope.estimate_memory(model, (2, 16), amp=amp, device="cpu")  # a shape: token ids
    assert report.inputs == ((2, 16),)
    truth = measured_peak(model, (((2, 16), torch.int64),), StepConfig(amp=amp, device="cpu"))
    assert abs(report.peak - truth) <= 0.01 * truth, (report.peak, truth)
    assert report.kind("parameters") == 4 * sum(p.numel() for p in model.parameters())


def test_cli_hf_llama_json(cli) -> None:
    config = [arg for k, v in TINY.items() for arg in ("--config", f"{k}={v}")]
    result = cli("memory", "hf:llama", *config, "--input-size", "2x16", "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    model = torchscope.load_model("hf:llama", device="meta", config=TINY)
    assert data["breakdown"]["parameters"] == 4 * sum(p.numel() for p in model.parameters())
    assert data["total_params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_llama_7b_at_2048_tokens_without_allocating(cli) -> None:
    result = cli("memory", "hf:llama", "--input-size", "1x2048", "--dtype", "bf16", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert 6.5e9 < data["total_params"] < 7e9  # Llama-2-7B's default config: 6,738,415,616
    assert data["breakdown"]["parameters"] >= 2 * data["total_params"]  # bf16 weights
