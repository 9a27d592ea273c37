"""The truth the prediction is checked against: a real CPU step, its live tensor bytes measured.

:func:`measured_peak` runs the same configured step on a real copy of the model with real tensors and
counts live storage bytes by address (``data_ptr``): a storage is born when an op returns memory at an
address not already live, and dies when its Python storage object is collected. This shares nothing
with the prediction's measuring but the step's code: the prediction never executes a kernel, the
truth never sees a fake or meta tensor, so a bug in one does not hide in the other.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from torchscope._memory.step import (
    Batch,
    StepConfig,
    grad_checkpointing,
    make_batch,
    make_optimizer,
    training_step,
)


class _LiveBytes(TorchDispatchMode):
    """Live bytes of CPU storages, keyed by address."""

    def __init__(self) -> None:
        super().__init__()
        self.live_by_ptr: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0 or ptr in self.live_by_ptr:
            return
        self.live_by_ptr[ptr] = storage.nbytes()
        self.live += storage.nbytes()
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._drop, ptr)

    def _drop(self, ptr: int) -> None:
        self.live -= self.live_by_ptr.pop(ptr, 0)

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        stack = [out]
        while stack:
            item = stack.pop()
            if isinstance(item, torch.Tensor):
                if item.device.type == "cpu" and item.layout == torch.strided:
                    self.add(item)
            elif isinstance(item, tuple | list):
                stack.extend(item)
        return out


def measured_peak(model: nn.Module, batch: Batch, config: StepConfig) -> int:
    """The peak of live tensor bytes during ``config.steps`` real CPU steps of a copy of ``model``.

    ``model`` must have real (not meta) weights; it is not changed. ``config.device`` should be
    ``"cpu"``: the truth counts exact storage bytes, with no allocator rounding.
    """
    real = copy.deepcopy(model)
    if config.dtype != "fp32":
        real.to(config.param_dtype)
    if config.channels_last:
        real.to(memory_format=torch.channels_last)
    real.train(config.mode == "train")
    counter = _LiveBytes()
    for t in [*real.parameters(), *real.buffers()]:
        counter.add(t)
    params = [p for p in real.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, params)
    run = training_step(config, optimizer)
    with grad_checkpointing(real, config.grad_checkpointing):
        for _ in range(1 if config.mode == "eval" else config.steps):
            with counter:
                data = make_batch(batch, config, torch.device("cpu"))
                run(real, data)
                del data
    return counter.peak


TRUTH_MODELS: tuple[str, ...] = (
    "resnet18", "resnet50", "resnext50_32x4d", "densenet121", "mobilenet_v2", "mobilenet_v3_large",
    "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf", "regnet_x_400mf", "shufflenet_v2_x1_0",
    "squeezenet1_1", "mnasnet1_0", "vgg11_bn", "alexnet", "googlenet", "inception_v3", "convnext_tiny",
    "vit_b_16", "swin_t",
)  # fmt: skip
"""The 20 torchvision models of the truth table (docs/memory.md)."""


def truth_row(name: str, frozen: bool, amp: str, *, batch: int = 2, image: int = 64) -> tuple[int, int]:
    """(predicted, measured) peak bytes of two AdamW steps of torchvision ``name`` on the CPU.

    The model is built for real (random weights, 10 classes; ViT at ``image`` px); ``frozen`` freezes
    all but the head. inception_v3 needs at least 75 px and gets 80, without its auxiliary head
    (whose 5x5 convolution needs 299 px).
    """
    import torchvision

    from torchscope._freeze import freeze_backbone
    from torchscope._memory.estimate import estimate_memory

    torch.manual_seed(0)
    kwargs: dict[str, Any] = {"num_classes": 10}
    if name.startswith("vit_"):
        kwargs["image_size"] = image
    if name in ("inception_v3", "googlenet"):
        kwargs["init_weights"] = False
    if name == "inception_v3":
        kwargs["aux_logits"] = False
    model = torchvision.models.get_model(name, **kwargs)
    if frozen:
        freeze_backbone(model)
    size = max(image, 80) if name == "inception_v3" else image
    shape = (batch, 3, size, size)
    predicted = estimate_memory(model, shape, optimizer="adamw", amp=amp, device="cpu").peak
    truth = measured_peak(
        model, ((shape, torch.float32),), StepConfig(optimizer="adamw", amp=amp, device="cpu")
    )
    return predicted, truth
