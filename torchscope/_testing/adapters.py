"""The room for the Hugging Face / PEFT assertions of issue 11 (not written yet).

``assert_adapters_only_trainable(model)``, ``assert_base_unchanged(model, step)`` and
``assert_merge_equivalent(peft_model, inputs, atol=...)`` go here: built on
:mod:`torchscope._testing.messages` (``finish``, ``violation_message``) and
:mod:`torchscope._testing.tensors`, listed in this module's ``__all__``, then re-exported (and
given ``__module__ = "torchscope.testing"``) by :mod:`torchscope.testing`. Like every module of the
core, this one must not import ``transformers`` or ``peft`` at module level.
"""

from __future__ import annotations

__all__: list[str] = []
