"""The benchmark's batches: synthetic tensors made once on the device, or an ImageFolder read for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from torchscope._bench.device import Dist
from torchscope.errors import TorchscopeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Batches:
    """Synthetic tensors made once on the device, or an endless ImageFolder loader."""

    def __init__(
        self,
        device: torch.device,
        batch_size: int,
        image_size: int,
        num_classes: int,
        channels_last: bool,
        loader: Any | None = None,
        sampler: Any | None = None,
    ) -> None:
        self.device = device
        self.channels_last = channels_last
        self.loader = loader
        self.sampler = sampler
        self.fixed: tuple[Any, ...] | None = None
        self._it: Iterator[Any] | None = None
        if loader is None:
            images = torch.randn(batch_size, 3, image_size, image_size, device=device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = torch.randint(0, num_classes, (batch_size,), device=device)
            self.fixed = (images, targets)
        else:
            self._it = self._endless()

    def _endless(self) -> Iterator[Any]:
        epoch = 0
        while self.loader is not None:
            if self.sampler is not None:
                self.sampler.set_epoch(epoch)
            yield from self.loader
            epoch += 1

    def raw(self) -> Any:
        """The next raw (images, targets) from the loader, still on the host."""
        if self._it is None:  # pragma: no cover - only called with a loader
            raise TorchscopeError("no data loader")
        return next(self._it)

    def next(self) -> tuple[Any, ...]:
        if self.fixed is not None:
            return self.fixed
        images, targets = self.raw()
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, targets.to(self.device, non_blocking=True)


def image_folder(
    path: Path, image_size: int, batch_size: int, workers: int, pin: bool, dist: Dist | None
) -> tuple[Any, Any, int]:
    """(loader, sampler or None, number of classes) of the ImageFolder at ``path``, augmented as in training.

    Checks the folder first: a missing folder, no images, or fewer images than one batch per
    process is a :class:`TorchscopeError` naming the fix.
    """
    # torchvision's datasets and transforms (and PIL) load only for a run with --data
    import torchvision
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler
    from torchvision import transforms

    if not path.is_dir():
        raise TorchscopeError(
            f"--data {str(path)!r} is not a directory; give an ImageFolder root (one folder per class)"
        )
    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    try:
        dataset = torchvision.datasets.ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, RuntimeError) as exc:
        raise TorchscopeError(
            f"--data {str(path)!r} is not an ImageFolder ({exc}); put images in PATH/<class>/*.jpg"
        ) from None
    per_rank = len(dataset) // (dist.world_size if dist else 1)
    if per_rank < batch_size:
        raise TorchscopeError(
            f"--data {str(path)!r} has {len(dataset)} images, fewer than one batch of {batch_size} per process; "
            "use a smaller --batch-size or more images"
        )
    sampler: Any = DistributedSampler(dataset, shuffle=True, drop_last=True) if dist else None
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    return loader, sampler, len(dataset.classes)
