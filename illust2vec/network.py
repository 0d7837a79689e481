"""The illust2vec networks as plain nn.Modules, with the Caffe layer names so weights map one to one.

Both published models share a VGG-style trunk of 3x3 convolutions (pad 1, ReLU) and 2x2 max pools
on a 224 px BGR picture. The tag model ends in conv6_4 (1539 channels, no ReLU), a 7x7 average
pool and a sigmoid: one probability per tag. The feature model stops the trunk at conv6_3 and
flattens its 1024x7x7 output into a fully connected `encode1` of 4096 units: the illust2vec
feature vector.

`width` scales every trunk layer's channels; 1.0 is the published network, narrower copies keep
tests and small experiments quick. The tag outputs stay 1539 so that they always line up with the
tag list.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Variant = Literal["tag", "feature"]
INPUT_SIZE = 224
NUM_TAGS = 1539
FEATURE_DIM = 4096

# (layer, output channels, max pool after it), in order; conv6_4 belongs to the tag model only.
TRUNK: tuple[tuple[str, int, bool], ...] = (
    ("conv1_1", 64, True),
    ("conv2_1", 128, True),
    ("conv3_1", 256, False), ("conv3_2", 256, True),
    ("conv4_1", 512, False), ("conv4_2", 512, True),
    ("conv5_1", 512, False), ("conv5_2", 512, True),
    ("conv6_1", 1024, False), ("conv6_2", 1024, False), ("conv6_3", 1024, False),
)


def trunk_channels(name: str, width: float) -> int:
    """Channels of a trunk layer at a given width (at least one)."""
    full = dict((layer, out) for layer, out, _ in TRUNK)[name]
    return max(1, round(full * width))


class Illust2VecNet(nn.Module):
    """BGR, mean-subtracted, 224 px input -> tag probabilities (tag) or encode1 features (feature)."""

    def __init__(self, variant: Variant = "tag", width: float = 1.0) -> None:
        super().__init__()
        if variant not in ("tag", "feature"):
            raise ValueError(f"variant must be tag or feature, not {variant!r}")
        if width <= 0:
            raise ValueError(f"width must be positive, not {width}")
        self.variant, self.width = variant, width
        self.pool_after: set[str] = set()
        c_in = 3
        for name, _, pool in TRUNK:
            c_out = trunk_channels(name, width)
            self.add_module(name, nn.Conv2d(c_in, c_out, 3, padding=1))
            if pool:
                self.pool_after.add(name)
            c_in = c_out
        if variant == "tag":
            self.conv6_4 = nn.Conv2d(c_in, NUM_TAGS, 3, padding=1)
        else:
            self.encode1 = nn.Linear(c_in * 7 * 7, FEATURE_DIM)

    def trunk(self, x: Tensor) -> Tensor:
        for name, _, _ in TRUNK:
            x = F.relu(getattr(self, name)(x))
            if name in self.pool_after:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Tag model: (N, 1539) probabilities. Feature model: (N, 4096) encode1 activations."""
        h = self.trunk(x)
        if self.variant == "tag":
            # The published 7x7 average pool is a global mean at 224 px; a mean keeps other sizes usable.
            return torch.sigmoid(self.conv6_4(h).mean(dim=(2, 3)))
        if h.shape[-2:] != (7, 7):
            raise ValueError(f"the feature model needs {INPUT_SIZE} px input (got {x.shape[-1]} px)")
        return self.encode1(h.flatten(1))


def infer_width(state: dict[str, Tensor]) -> float:
    """The width a state dict was made at, from its first layer's channels."""
    return state["conv1_1.weight"].shape[0] / 64
