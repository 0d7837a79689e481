"""A Twin-GAN checkpoint at inference: the EMA encoder and generator, each domain with its own norm set.

The one place that knows where Twin-GAN keeps its inference weights in a checkpoint ("ema"),
which sizes its growing networks take, and how a character code reaches the anime output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from twingan.checkpoint import build_and_load
from twingan.config import RunConfig
from twingan.domains import DOMAIN_B
from twingan.errors import UserError
from twingan.models.schedule import build_phases, phase_at
from twingan.models.twingan.character import TagCode, load_tag_code
from twingan.models.twingan.networks import TwinGAN

STATE_KEY = "ema"
"""The checkpoint entry holding the networks translation uses (the recipe's EMA copy)."""
SMALLEST = 8
"""The smallest output size offered: below it a picture is a few coloured squares."""


def reached_resolution(cfg: RunConfig, images_seen: int) -> int:
    """The resolution a run had finished growing to after `images_seen` images: the current
    phase's while it is stable, the one before while a new one fades in."""
    phases = build_phases(cfg.train.start_resolution, cfg.model.resolution, cfg.train.phase_images,
                          cfg.train.final_phase_images)
    phase = phase_at(phases, images_seen)
    return phase.resolution // 2 if phase.fading else phase.resolution


class TwinGANInference:
    """Twin-GAN's inference networks, loaded from a checkpoint's state."""

    no_shared_latent = None
    state_key = STATE_KEY

    def __init__(self, cfg: RunConfig, state: dict, image_channels: int) -> None:
        self.cfg = cfg
        self.net = build_and_load(lambda: TwinGAN(cfg.model, image_channels), state[STATE_KEY])
        self.character = cfg.model.character
        self._tag_code: TagCode | None = None
        self.resolution = reached_resolution(cfg, int(state.get("images_seen", 0)))

    def size_refusal(self, size: int, largest: int) -> str | None:
        """Powers of two up to the final resolution: the sizes the networks have blocks for. A run
        stopped while growing works below its final size too; its upper layers are untrained."""
        final = self.cfg.model.resolution
        low = min(SMALLEST, self.resolution)
        if low <= size <= final and size & (size - 1) == 0:
            return None
        trained = f" (it finished training at {self.resolution} px)" if self.resolution < final else ""
        return f"a power of two from {low} to {final}{trained}"

    def one_way(self, x: Tensor, src: int, dst: int, character: Tensor | None = None) -> Tensor:
        """Without a `character`, anime output of a model with a character source takes the mean
        code of its training pictures."""
        size = x.shape[-1]
        condition = None
        if dst == DOMAIN_B and self.character != "none":
            code = self.net.character_mean[None] if character is None else character.to(x.device, torch.float32)
            condition = code.expand(x.shape[0], -1)
        latent, skips = self.net.encoder(x, src, size)
        return self.net.generator(latent, skips, dst, size, condition=condition, source=src).clamp(-1, 1)

    def reconstruct(self, x: Tensor, domain: int) -> Tensor:
        """Encode and decode in one domain; anime with each picture's own code when the model
        learned codes."""
        own = self.net.character(x) if domain == DOMAIN_B and self.character == "learned" else None
        return self.one_way(x, domain, domain, own)

    def encode(self, x: Tensor, domain: int, size: int) -> Tensor:
        latent, _ = self.net.encoder(x, domain, size)
        return latent.flatten(1)

    def character_code(self, prepared: Tensor, whole: Callable[[], Tensor],
                       illust2vec_weights: str | Path | None) -> Tensor:
        """The learned encoder's code of the picture as the model takes it, or illust2vec's tag
        probabilities of the whole picture (it takes any size; the tagger loads on first use)."""
        if self.character == "learned":
            return self.net.character(prepared)
        picture = whole()
        if self._tag_code is None:
            self._tag_code = load_tag_code(illust2vec_weights, self.cfg.model.character_tags, picture.device)
        return self._tag_code(picture)

    def tags_code(self, tags: list[str]) -> Tensor:
        if self.character != "illust2vec":
            raise UserError("--tags sets illust2vec attributes; this model learned its own character codes "
                            "(model.character=learned): give a reference picture instead")
        known = self.cfg.model.character_tags
        unknown = [t for t in tags if t not in known]
        if unknown:
            raise UserError(f"tag(s) {', '.join(map(repr, unknown))} are not among this model's character tags: "
                            f"{', '.join(known)}")
        code = torch.zeros(1, len(known))
        code[0, [known.index(t) for t in tags]] = 1.0
        return code

    def mean_code(self) -> Tensor:
        return self.net.character_mean[None]
