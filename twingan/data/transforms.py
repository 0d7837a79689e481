"""Preprocessing in two halves: geometry on the loader workers, colour and rotation on the device.

Loader side (PIL, per picture): resize to a square (squash, as the original did, or keep aspect
and centre-crop), random crop, horizontal flip, then a uint8 tensor. Device side (a batch, on
the GPU when there is one): to float in [-1, 1], reflect-padded rotation, additive brightness
and saturation jitter. Rotation and colour maths on whole batches are where a GPU pays off, and
they would otherwise make two CPU workers the bottleneck of a GPU run.
"""

from __future__ import annotations

from collections.abc import Callable

import kornia.augmentation as KA
import kornia.color
import kornia.enhance
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

from twingan.config import DataConfig


def loader_transform(cfg: DataConfig, size: int, train: bool = True) -> Callable[[Image.Image], torch.Tensor]:
    """PIL picture -> uint8 CHW tensor of `size` x `size`; random parts only when `train`.

    The random crop is done as "resize to size / fraction, crop size" so that each picture is
    resampled once rather than twice.
    """
    crop = train and cfg.random_crop < 1.0
    resized = round(size / cfg.random_crop) if crop else size
    if cfg.resize == "squash":
        steps: list[nn.Module] = [v2.Resize((resized, resized), antialias=True)]
    else:
        steps = [v2.Resize(resized, antialias=True), v2.CenterCrop(resized)]
    if crop:
        steps.append(v2.RandomCrop(size))
    if train and cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.PILToTensor())
    return v2.Compose(steps)


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range the generators produce."""
    return batch.float().div_(127.5).sub_(1.0)


class DeviceAugment(nn.Module):
    """Batch augmentation on the training device: uint8 NCHW in, float [-1, 1] out."""

    def __init__(self, cfg: DataConfig):
        super().__init__()
        self.brightness = cfg.brightness
        self.rotate = KA.RandomAffine(cfg.rotation, padding_mode="reflection", p=1.0) if cfg.rotation > 0 else None
        self.saturation = 0.0 if cfg.grayscale else cfg.saturation

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float().div_(255.0)
        if self.rotate is not None:
            x = self.rotate(x)
        if self.brightness > 0:
            shift = torch.empty(x.shape[0], device=x.device).uniform_(-self.brightness, self.brightness)
            x = kornia.enhance.adjust_brightness(x, shift)
        if self.saturation > 0:
            x = _jitter_saturation(x, self.saturation)
        return x.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)


def _jitter_saturation(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Blend each picture with its own grey version by a factor drawn from [1 - a, 1 + a].

    The same formula as torchvision's and kornia's saturation adjustment, written out because
    kornia's ColorJitter spends 2.5x longer on it on a CPU (55 vs 22 ms per 16 x 128 px batch).
    """
    factor = torch.empty(x.shape[0], 1, 1, 1, device=x.device).uniform_(1 - amount, 1 + amount)
    grey = kornia.color.rgb_to_grayscale(x)
    return grey + factor * (x - grey)
