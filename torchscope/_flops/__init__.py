"""Multiply-accumulate counting: the counter, the formulas it adds, and the classification of ops.

``counter`` holds :class:`MacCounter`; ``rnn`` the fused recurrent kernels' formulas; ``ops`` which
aten ops are counted, zero-cost by nature, or missing a formula.
"""

from torchscope._flops.counter import EXTRA_FORMULAS, MacCounter, OpCallback
from torchscope._flops.ops import DATA_MOVEMENT, NO_CONTRACTION, OpKind, classify, is_zero_cost

__all__ = [
    "DATA_MOVEMENT",
    "EXTRA_FORMULAS",
    "NO_CONTRACTION",
    "MacCounter",
    "OpCallback",
    "OpKind",
    "classify",
    "is_zero_cost",
]
