"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

A critic trained on a hundred pictures memorises them within minutes and then tells any new
picture, real or drawn, from the ones it knows. DiffAugment shows the critic every picture,
real and generated, through the same random, differentiable changes: brightness, saturation and
contrast ("color"), a shift by up to 1/8 of the side with zero fill ("translation") and a square
of half the side blanked ("cutout"). The critic cannot memorise what it never sees unchanged,
and because each change is differentiable the generator still gets its gradient through it; the
generator is not taught to draw the changes, since real pictures carry them too.

Written here rather than taken from kornia: the paper's three operations are a few tensor lines
each, and these are exactly its ops and ranges on [-1, 1] pictures (kornia's colour jitter works
on [0, 1] with other ranges, and its random crops resample instead of shifting whole pixels).
Each picture of a batch draws its own parameters, as in the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _uniform(x: Tensor) -> Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def colour(x: Tensor) -> Tensor:
    """Brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5], each per picture."""
    x = x + (_uniform(x) - 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (_uniform(x) * 2) + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def translation(x: Tensor, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Shift each picture by whole pixels, up to `ratio` of its side each way; the edge fills with 0."""
    n, c, h, w = x.shape
    reach_h, reach_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_h = torch.randint(-reach_h, reach_h + 1, (n, 1, 1), device=x.device)
    shift_w = torch.randint(-reach_w, reach_w + 1, (n, 1, 1), device=x.device)
    # Index into the picture padded by one zero pixel: a source outside the picture lands on the pad.
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + shift_h + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + shift_w + 1).clamp(0, w + 1)
    index = (rows * (w + 2) + cols).view(n, 1, h * w).expand(-1, c, -1)
    return F.pad(x, (1, 1, 1, 1)).flatten(2).gather(2, index).view(n, c, h, w)


def cutout(x: Tensor, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Blank a square of `ratio` of the side, centred anywhere in the picture (clipped at its edge)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPERATIONS: dict[str, Callable[[Tensor], Tensor]] = {"color": colour, "translation": translation, "cutout": cutout}
"""The policy names of the reference code."""


def diff_augment(x: Tensor, policy: Sequence[str]) -> Tensor:
    """`x` through the policy's operations in the policy's order, as the reference applies them;
    `x` itself for an empty policy."""
    for name in policy:
        x = OPERATIONS[name](x)
    return x
