"""Wrappers that hide the user's model: ``torch.compile``, DataParallel and DDP.

Below the loader, the tree and the summary, which all look through them: importing it costs no
loader (the summary's first call should not pay for the hf: and checkpoint loaders)."""

from __future__ import annotations

from torch import nn


def unwrap(model: nn.Module) -> tuple[nn.Module, tuple[str, ...]]:
    """Strip ``torch.compile`` and DataParallel/DDP wrappers; return the inner model and the wrappers.

    >>> inner = nn.Linear(2, 2)
    >>> unwrap(nn.DataParallel(inner)) == (inner, ("DataParallel",))
    True
    """
    wrappers: list[str] = []
    while True:
        # by name: importing torch._dynamo to check the type costs a second
        if type(model).__name__ == "OptimizedModule" and isinstance(
            getattr(model, "_orig_mod", None), nn.Module
        ):
            wrappers.append("torch.compile")
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            wrappers.append(type(model).__name__)
            model = model.module
        else:
            return model, tuple(wrappers)
