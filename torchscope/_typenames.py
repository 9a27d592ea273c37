"""The class name a module shows as, in the tree, the summary and every message that names a layer.

A room of its own (torch only), so the summary's hooks do not import the tree to name a layer.
"""

from __future__ import annotations

import torch
from torch import nn


def type_name(module: nn.Module) -> str:
    """The class a module shows as: the scripted class of a TorchScript module, a peft tuner's name."""
    # TorchScript modules are all RecursiveScriptModule; show the class they were scripted from
    original = getattr(module, "original_name", None) if isinstance(module, torch.jit.ScriptModule) else None
    if isinstance(original, str) and original:
        return original
    # peft's adapted layers reuse torch's names (peft.tuners.lora.layer.Linear): say which tuner
    where = type(module).__module__.split(".")
    if len(where) > 2 and where[:2] == ["peft", "tuners"]:
        return f"{where[2]}.{type(module).__name__}"
    return type(module).__name__


__all__ = ["type_name"]
