"""Pictures <-> tensors at inference time: a PIL picture in, a CHW tensor in [-1, 1] (the
generators' range) out; `to_unit_range` takes model output to [0, 1], which `to_picture` turns
back into a PIL picture.

These helpers deliberately avoid torchvision and kornia: importing torchvision pulls in
torch._dynamo (1.4 s on a 2-core machine), which would double the time a one-picture
`twingan translate` spends before it starts. `resize_for_model` repeats the evaluation half of
`loader_transform` with Pillow directly, the same calls torchvision makes for PIL pictures
(a test checks the two agree pixel for pixel).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

MAX_SIZE = 2048
"""The largest picture side a model is run at or a crop is made at: a CycleGAN ResNet generator
at 2048 px holds about 1 GB per activation; --size 100000 ran into the kernel's OOM killer."""


def resize_for_model(image: Image.Image, size: int, mode: str) -> Image.Image:
    """`loader_transform(train=False)` for one PIL picture: squash to a square, or short side then centre crop."""
    if mode == "squash":
        return image.resize((size, size), Image.Resampling.BILINEAR)
    width, height = image.size
    short, long = min(width, height), max(width, height)
    scaled = (size, int(size * long / short)) if width <= height else (int(size * long / short), size)
    image = image.resize(scaled, Image.Resampling.BILINEAR)
    left = int(round((image.width - size) / 2.0))
    top = int(round((image.height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image) -> Tensor:
    """PIL picture -> CHW float in [-1, 1], the generators' range."""
    array = np.asarray(image, dtype=np.uint8)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_unit_range(x: Tensor) -> Tensor:
    """Model range [-1, 1] -> [0, 1], clamped: what pictures, grids and image metrics take."""
    return x.add(1).div(2).clamp(0, 1)


def to_picture(x: Tensor) -> Image.Image:
    """CHW float in [0, 1] -> PIL picture, rounding down as torchvision's to_pil_image does."""
    array = x.detach().cpu().mul(255).byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
