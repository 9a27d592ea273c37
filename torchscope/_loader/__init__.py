"""Turn a model spec into an ``nn.Module``: torchvision names, timm, Python attributes and files.

Specs, tried in this order:

- a prefixed source (:data:`~torchscope._loader.spec.PREFIX_SOURCES`): ``timm:NAME`` is
  ``timm.create_model(NAME, **kwargs)``.
- ``path/to/file.py:attr`` and ``package.module:attr``: attr is an ``nn.Module`` subclass, a
  factory function or a module instance.
- an existing file: a TorchScript archive, a ``torch.export`` ``.pt2`` archive, or a ``torch.save``
  file holding a whole module (only with ``unsafe_load=True``). A file holding a state_dict needs an
  architecture: give it as ``weights=`` to a spec that builds one.
- a torchvision name (``torchvision.models.list_models()``), built as its default weights were
  published (see :func:`build_kwargs_for_published`).

``device="meta"`` builds without memory and without init cost, for every builder: parameters and
buffers are moved to meta as they are registered, so builders that compute their architecture from
real tensors (regnet) still work.

One module per source: :mod:`.meta` (meta init), :mod:`.vision` (torchvision), :mod:`.objects`
(timm and Python objects), :mod:`.files` (model and weight files), and :mod:`.spec`, which picks
the source.
"""

from __future__ import annotations

from torchscope._loader.common import SPEC_FORMS, BuildRequest
from torchscope._loader.files import extract_state_dict, load_weights, strip_common_prefix, torch_load
from torchscope._loader.meta import build_on_meta, init_on_meta
from torchscope._loader.spec import PREFIX_SOURCES, load_model
from torchscope._loader.vision import (
    build_kwargs_for_published,
    default_input_size,
    list_model_names,
)
from torchscope._wrappers import unwrap

__all__ = [
    "PREFIX_SOURCES",
    "SPEC_FORMS",
    "BuildRequest",
    "build_kwargs_for_published",
    "build_on_meta",
    "default_input_size",
    "extract_state_dict",
    "init_on_meta",
    "list_model_names",
    "load_model",
    "load_weights",
    "strip_common_prefix",
    "torch_load",
    "unwrap",
]
