"""A CycleGAN checkpoint at inference: its two generators, one per target domain.

The one place that knows where CycleGAN keeps its inference weights in a checkpoint ("gens")
and which sizes its fully convolutional generators take.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor, nn

from twingan.checkpoint import build_and_load
from twingan.config import RunConfig
from twingan.domains import DOMAINS
from twingan.models.cyclegan.networks import build_generator

STATE_KEY = "gens"
"""The checkpoint entry holding both generators (A -> B first)."""
SMALLEST = 8
"""The smallest output size offered: below it a picture is a few coloured squares."""


class CycleGANInference:
    """CycleGAN's generators, loaded from a checkpoint's state. It trains at one size from the
    start, so the checkpoint always works at its configured resolution."""

    character = "none"
    state_key = STATE_KEY
    no_shared_latent = "CycleGAN's two generators share no latent space"

    def __init__(self, cfg: RunConfig, state: dict, image_channels: int) -> None:
        self.cfg = cfg
        self.net = build_and_load(lambda: nn.ModuleList(build_generator(cfg.model, image_channels) for _ in DOMAINS),
                                  state[STATE_KEY])
        self.resolution = cfg.model.resolution

    def size_refusal(self, size: int, largest: int) -> str | None:
        """The ResNet generator halves twice and the U-Net model.unet_downs times; any size they
        divide works, as the networks are fully convolutional."""
        m = self.cfg.model
        if m.generator == "resnet":
            ok, allowed = SMALLEST <= size <= largest and size % 4 == 0, f"a multiple of 4 from {SMALLEST} to {largest}"
        else:
            step = 2**m.unet_downs
            ok, allowed = step <= size <= largest and size % step == 0, f"a multiple of {step} up to {largest}"
        return None if ok else allowed

    def one_way(self, x: Tensor, src: int, dst: int, character: Tensor | None = None) -> Tensor:
        return self.net[src](x)

    def reconstruct(self, x: Tensor, domain: int) -> Tensor:
        """The generator that makes the picture's own domain (its identity mapping)."""
        return self.net[1 - domain](x)

    def encode(self, x: Tensor, domain: int, size: int) -> Tensor:
        raise ValueError(self.no_shared_latent)

    def character_code(self, prepared: Tensor, whole: Callable[[], Tensor],
                       illust2vec_weights: str | Path | None) -> Tensor:
        raise ValueError("CycleGAN has no character codes")

    def tags_code(self, tags: list[str]) -> Tensor:
        raise ValueError("CycleGAN has no character codes")

    def mean_code(self) -> Tensor:
        raise ValueError("CycleGAN has no character codes")
