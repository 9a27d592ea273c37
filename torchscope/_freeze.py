"""Freeze and unfreeze parameters by glob pattern; find, freeze around and replace a classifier head.

Patterns are matched by :func:`torchscope._patterns.match_names` against every parameter name,
including the second names of tied or shared parameters, so ``out.weight`` and ``embed.weight``
both select a tied tensor. A pattern that selects no parameter is a :class:`PatternError`.
"""

from __future__ import annotations

import torch
from torch import nn

from torchscope._patterns import match_names
from torchscope.errors import PatternError, TorchscopeError

# Names torchvision, timm and most hand-written classifiers give their head, most specific first.
HEAD_NAMES: tuple[str, ...] = ("heads", "head", "fc", "classifier", "last_linear", "logits", "cls_head")
_HEAD_TYPES = (nn.Linear, nn.Conv2d, nn.Conv1d, nn.Conv3d)


def _set_requires_grad(model: nn.Module, patterns: tuple[str, ...], flag: bool) -> list[str]:
    named = list(model.named_parameters(remove_duplicate=False))
    if not patterns:
        raise PatternError("no pattern given; pass at least one glob such as 'layer1.*'")
    selected = set(match_names([n for n, _ in named], list(patterns), what="parameter"))
    targets = {id(p): p for n, p in named if n in selected}
    changed = {pid for pid, p in targets.items() if p.requires_grad != flag}
    for p in targets.values():
        p.requires_grad_(flag)
    return [n for n, p in named if id(p) in changed]


def freeze(model: nn.Module, *patterns: str) -> list[str]:
    """Set ``requires_grad=False`` on the parameters selected by ``patterns``; return the names changed.

    Only the ``requires_grad`` half of "frozen": norm layers in train mode still update their
    running statistics (``torchscope.tree`` warns about that).

    Args:
        model: The model to change in place.
        *patterns: Glob patterns of module or parameter names (``"layer1.*"``).

    Returns:
        The names of the parameters whose flag changed.

    Raises:
        PatternError: No pattern given, or a pattern matches nothing.

    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> freeze(m, "0")
    ['0.weight', '0.bias']
    """
    return _set_requires_grad(model, patterns, False)


def unfreeze(model: nn.Module, *patterns: str) -> list[str]:
    """Set ``requires_grad=True`` on the parameters selected by ``patterns``; return the names changed.

    Args:
        model: The model whose parameters are made trainable, in place.
        *patterns: What to unfreeze: globs of module or parameter names (``"layer4.*"``).

    Returns:
        The names of the parameters that were frozen and now train (already trainable ones are
        not listed).

    Raises:
        PatternError: No pattern was given, or one of them selects no parameter.

    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)).requires_grad_(False)
    >>> unfreeze(m, "1.*")
    ['1.weight', '1.bias']
    """
    return _set_requires_grad(model, patterns, True)


def _last_head_layer(module: nn.Module, prefix: str) -> str | None:
    """The qualified name of the last Linear/Conv inside ``module`` (itself included)."""
    if isinstance(module, _HEAD_TYPES):
        return prefix
    found: str | None = None
    for name, sub in module.named_modules(prefix=prefix):
        if isinstance(sub, _HEAD_TYPES):
            found = name
    return found


def find_head(model: nn.Module) -> str:
    """The qualified name of the classifier head layer (the last Linear/Conv of the head).

    Works for every torchvision classification family (``fc``, ``classifier.6``, ``classifier.1``,
    ``heads.head``, ``head``...) and for timm models (their ``pretrained_cfg['classifier']``).

    Args:
        model: A classification model.

    Returns:
        The head layer's qualified name, e.g. ``"fc"``.

    Raises:
        TorchscopeError: No classifier head was found.

    >>> from torch import nn
    >>> find_head(nn.Sequential())  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    torchscope.errors.TorchscopeError: no classifier head found ...
    >>> import torchvision
    >>> find_head(torchvision.models.vgg11())
    'classifier.6'
    """
    modules = dict(model.named_modules())
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("classifier"), str):
        name = cfg["classifier"]
        if name in modules:
            found = _last_head_layer(modules[name], name)
            if found is not None:
                return found
    children = dict(model.named_children())
    for name in HEAD_NAMES:
        if name in children:
            found = _last_head_layer(children[name], name)
            if found is not None:
                return found
    raise TorchscopeError(
        f"no classifier head found in {type(model).__name__} (looked for a Linear/Conv under a child "
        f"named {', '.join(HEAD_NAMES)}); freeze by pattern instead, e.g. --freeze 'features.*'"
    )


def freeze_backbone(model: nn.Module) -> str:
    """Freeze every parameter except the classifier head's; return the head's name.

    The head is unfrozen, so the result is "backbone frozen, head trainable" whatever came before.

    Args:
        model: A classification model, changed in place.

    Returns:
        The head's qualified name.

    Raises:
        TorchscopeError: No classifier head was found.

    >>> import torchvision
    >>> m = torchvision.models.resnet18()
    >>> freeze_backbone(m), [n for n, p in m.named_parameters() if p.requires_grad]
    ('fc', ['fc.weight', 'fc.bias'])
    """
    head = find_head(model)
    head_module = model.get_submodule(head)
    head_ids = {id(p) for p in head_module.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in head_ids)
    return head


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Swap the classifier head for a fresh layer with ``num_classes`` outputs; return its name.

    The new layer has the same kind, inputs, bias, device and dtype as the old one.

    Args:
        model: A classification model, changed in place.
        num_classes: Outputs of the new head.

    Returns:
        The head's qualified name.

    Raises:
        TorchscopeError: ``num_classes`` is not a positive integer, or no head (or one of an
            unknown kind) was found.

    >>> import torchvision
    >>> m = torchvision.models.resnet18()
    >>> replace_head(m, 10), m.fc
    ('fc', Linear(in_features=512, out_features=10, bias=True))
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise TorchscopeError(f"num_classes={num_classes!r} must be a positive integer, e.g. 10")
    head = find_head(model)
    old = model.get_submodule(head)
    weight = old.weight
    if not isinstance(weight, torch.Tensor):  # pragma: no cover - Linear/Conv always have one
        raise TorchscopeError(f"head {head!r} has no weight tensor; replace it by hand")
    device, dtype = weight.device, weight.dtype
    new: nn.Module
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, device=device, dtype=dtype)
    elif isinstance(old, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        new = type(old)(
            old.in_channels,
            num_classes,
            old.kernel_size,  # type: ignore[arg-type]
            stride=old.stride,  # type: ignore[arg-type]
            padding=old.padding,  # type: ignore[arg-type]
            dilation=old.dilation,  # type: ignore[arg-type]
            bias=old.bias is not None,
            device=device,
            dtype=dtype,
        )
    else:  # pragma: no cover - find_head only returns the types above
        raise TorchscopeError(f"head {head!r} is a {type(old).__name__}; replace it by hand")
    parent_name, _, attr = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    # squeezenet and some others keep the class count for their forward pass
    if isinstance(getattr(model, "num_classes", None), int):
        setattr(model, "num_classes", num_classes)  # noqa: B010 - nn.Module's __setattr__ is typed narrowly
    return head
