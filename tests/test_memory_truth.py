"""The truth sweep: the prediction (fake/meta, no kernel runs) against a real CPU step's live storage."""

from __future__ import annotations

import pytest

from torchscope._memory.truth import TRUTH_MODELS, truth_row


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["off", "bf16"], ids=["fp32", "bf16"])
@pytest.mark.parametrize("frozen", [False, True], ids=["full", "frozen"])
@pytest.mark.parametrize("name", TRUTH_MODELS)
def test_prediction_within_5_percent_of_a_real_cpu_step(name: str, frozen: bool, amp: str) -> None:
    predicted, measured = truth_row(name, frozen, amp)
    assert measured > 0
    assert abs(predicted - measured) <= 0.05 * measured, (predicted, measured)


def test_truth_row_of_a_small_model_agrees() -> None:
    predicted, measured = truth_row("squeezenet1_1", True, "off", image=32)
    assert measured > 4 * 10 * 512  # at least the new head's weights
    assert abs(predicted - measured) <= 0.05 * measured
