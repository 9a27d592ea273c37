"""pytest-style assertions about a model and its training step.

Each helper raises :class:`AssertionError` whose message is a plain-text table (never ANSI codes,
never a wall of tensors): the offending names, their shapes, the max |Δ|, the cause and the fix.
Violations that share one cause are said once, with their count and the one call that fixes them.
The error's ``.check`` names the helper and ``.report`` holds its data as a dict.
Every helper leaves the model as it found it (:func:`torchscope.preserved`), except those whose
purpose is to run your step (``assert_step_ok``, ``assert_frozen``, ``expect_frozen``,
``assert_trainable_updated``, ``assert_base_unchanged``).

Inputs: a tuple is passed as positional arguments (``model(*x)``); anything else, a dict included,
as the one argument (``model(x)``).

>>> import torch
>>> from torchscope.testing import assert_output_shape
>>> assert_output_shape(torch.nn.Linear(4, 2), torch.randn(3, 4), (3, 2))
"""

# This module only re-exports: the helpers live in torchscope._testing, one module per job
# (messages, tensors, step, gradients, structure, recipes, adapters).

from __future__ import annotations

from torchscope._testing.adapters import (
    assert_adapters_only_trainable,
    assert_base_unchanged,
    assert_merge_equivalent,
)
from torchscope._testing.gradients import assert_grads_finite, assert_no_unused_params
from torchscope._testing.messages import MAX_ROWS as MAX_ROWS
from torchscope._testing.messages import format_table as format_table
from torchscope._testing.messages import violation_table as violation_table
from torchscope._testing.recipes import (
    assert_batch_independent,
    assert_loss_at_init,
    assert_overfits_one_batch,
)
from torchscope._testing.step import assert_frozen, assert_step_ok, assert_trainable_updated, expect_frozen
from torchscope._testing.structure import (
    assert_eval_mode,
    assert_output_shape,
    assert_param_count,
    assert_train_mode,
)

__all__ = [
    "assert_adapters_only_trainable",
    "assert_base_unchanged",
    "assert_batch_independent",
    "assert_eval_mode",
    "assert_frozen",
    "assert_grads_finite",
    "assert_loss_at_init",
    "assert_merge_equivalent",
    "assert_no_unused_params",
    "assert_output_shape",
    "assert_overfits_one_batch",
    "assert_param_count",
    "assert_step_ok",
    "assert_train_mode",
    "assert_trainable_updated",
    "expect_frozen",
]

# Users import these from here, so they say so (help(), reprs, pickling, the API docs).
for _name in [*__all__, "format_table", "violation_table"]:
    globals()[_name].__module__ = __name__
del _name
