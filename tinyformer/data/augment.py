"""Training augmentation with plain torch ops (there is no CPU build of torchvision here).

Every function takes float NCHW batches and a CPU ``torch.Generator``: the same generator state
gives the same output, which checkpoint/resume relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each side by ``padding``, then crop every sample at its own random offset.

    Output shape equals input shape; offset 0..2*padding per axis, drawn per sample.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # [n, h]
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # [n, w]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def random_hflip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each sample left-right with probability ``p``."""
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


@dataclass(frozen=True)
class Augment:
    """Random crop (zero padding ``crop_padding``) then optional horizontal flip."""

    crop_padding: int = 0
    hflip: bool = False

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = random_crop(x, self.crop_padding, generator)
        if self.hflip:
            x = random_hflip(x, generator)
        return x


def default_augment(dataset: str, image_size: int | None = None) -> Augment:
    """Digits: 1-pixel shifts, no flip (digits are not mirror-symmetric). CIFAR-10: pad 4 + flip.

    Other data sets: shifts of 1/8 of the image and no flip (flipping is only safe when the
    classes are known to be mirror-invariant).
    """
    if dataset == "digits":
        return Augment(crop_padding=1, hflip=False)
    if dataset == "cifar10":
        return Augment(crop_padding=4, hflip=True)
    return Augment(crop_padding=max(1, (image_size or 8) // 8), hflip=False)
