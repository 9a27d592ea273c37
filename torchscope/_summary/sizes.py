"""torchinfo's memory figures, computed as torchinfo computes them (``model_statistics.py``).

``Input size (MB)``: ``sys.getsizeof`` of each input tensor's storage. ``Forward/backward pass size
(MB)``: the first output tensor of every call of a leaf module (no children) that holds parameters,
twice (the forward's activation and its gradient). ``Params size (MB)``: the parameters' bytes;
ours counts each tensor once, torchinfo each leaf module's own (a tied tensor twice, a
container's own parameter never).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from torchscope._inputs import flatten_outputs
from torchscope._summary.calls import Call

_ITEMSIZE: dict[str, int] = {}


def itemsize(dtype: str) -> int:
    """Bytes per element of a dtype named as in a TensorSpec (``float32``: 4)."""
    size = _ITEMSIZE.get(dtype)
    if size is None:
        dt = getattr(torch, dtype, None)
        size = _ITEMSIZE[dtype] = dt.itemsize if isinstance(dt, torch.dtype) else 0
    return size


def storage_bytes(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """torchinfo's ``total_input``: ``sys.getsizeof`` of every input tensor's storage."""
    return sum(sys.getsizeof(t.untyped_storage()) for _, t in flatten_outputs((args, dict(kwargs)), "input"))


def leaf_output_bytes(
    calls: Iterable[Call], modules: Mapping[int, nn.Module], params: Mapping[int, tuple[int, int]]
) -> int:
    """torchinfo's ``total_output_bytes``: 2 x the first output of each leaf call with parameters."""
    total = 0
    counted: dict[int, bool] = {}  # per module: a leaf with parameters (a module called again: known)
    for c in calls:
        if c.opaque or not c.outputs:
            continue
        leaf = counted.get(c.module_id)
        if leaf is None:
            module = modules.get(c.module_id)
            leaf = counted[c.module_id] = (
                module is not None
                and params.get(c.module_id, (0, 0))[0] != 0
                and not any(child is not None for child in module._modules.values())
            )
        if not leaf:
            continue
        first = c.outputs[0]
        total += 2 * itemsize(first.dtype) * math.prod(first.shape)
    return total
