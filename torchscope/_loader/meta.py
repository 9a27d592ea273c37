"""Build modules on the meta device: no memory, no init cost, for any builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_INIT_FUNCTIONS: tuple[str, ...] = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
)


@contextmanager
def init_on_meta() -> Iterator[None]:
    """Build modules with every parameter and buffer on the meta device.

    Unlike ``with torch.device("meta")``, tensors the builder computes with stay real; only what a
    module registers moves to meta (the approach of accelerate's ``init_empty_weights``). Init
    functions then run on meta tensors and cost nothing.

    >>> with init_on_meta():
    ...     layer = nn.Linear(4096, 4096)
    >>> layer.weight.device
    device(type='meta')
    """
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register_parameter(self, name, param)
        p = self._parameters.get(name)
        # Lazy modules keep their uninitialized parameters; they have no shape to allocate yet.
        if p is None or p.is_meta or isinstance(p, nn.parameter.UninitializedParameter):
            return
        extra = dict(p.__dict__)
        extra.pop("requires_grad", None)
        new = type(p)(p.to("meta"), requires_grad=p.requires_grad)
        new.__dict__.update(extra)
        self._parameters[name] = new

    def meta_buffer(self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        if tensor is not None and not isinstance(tensor, nn.parameter.UninitializedBuffer):
            tensor = tensor.to("meta")
        register_buffer(self, name, tensor, persistent=persistent)

    # Init functions on meta tensors do nothing, but still dispatch through Python decompositions
    # (about 5 ms a call): skip them for meta tensors.
    originals = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS if hasattr(nn.init, name)}

    def skip_on_meta(func: Callable[..., Any]) -> Callable[..., Any]:
        def init(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
            return func(tensor, *args, **kwargs)

        return init

    nn.Module.register_parameter = meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = meta_buffer  # type: ignore[method-assign]
    for name, func in originals.items():
        setattr(nn.init, name, skip_on_meta(func))
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
        for name, func in originals.items():
            setattr(nn.init, name, func)


def build_on_meta(builder: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``builder`` under :func:`init_on_meta`; if an op has no meta kernel, build for real and move.

    The fallback costs memory and init time once, but a model that builds at all can be inspected.

    >>> build_on_meta(nn.Linear, 2, 3).weight.is_meta
    True
    """
    try:
        with init_on_meta():
            return builder(*args, **kwargs)
    except (NotImplementedError, RuntimeError) as exc:
        if "meta" not in str(exc).lower():
            raise
    model = builder(*args, **kwargs)
    return model.to("meta") if isinstance(model, nn.Module) else model
