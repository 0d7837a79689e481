"""Inference: a trained checkpoint as a picture-in, picture-out translator (the Python API).

    from twingan.translator import Translator
    translator = Translator.from_checkpoint("runs/cpu64")         # a run folder or a ckpt-*.pt
    anime = translator.translate(Image.open("me.jpg"))            # PIL in, PIL out
    photo = translator.translate(anime, direction="b2a")

Twin-GAN translates with its EMA encoder and generator (each domain's own norm set); CycleGAN
with its two generators. Networks run in eval mode (batch norm uses its running statistics and
dropout is off), so the same picture and checkpoint always give the same output, whatever else
is in the batch.

This module deliberately avoids torchvision and kornia: importing torchvision pulls in
torch._dynamo (1.4 s on a 2-core machine), which would double the time a one-picture
`twingan translate` spends before it starts. Its resizing repeats the evaluation half of
`loader_transform` with Pillow directly, the same calls torchvision makes for PIL pictures
(a test checks the two agree pixel for pixel).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from twingan.checkpoint import find_checkpoint, load_checkpoint
from twingan.config import RunConfig, config_from_dict
from twingan.cyclegan_networks import build_generator
from twingan.data.images import to_rgb
from twingan.distributed import pick_device
from twingan.errors import UserError
from twingan.networks import DOMAIN_A, DOMAIN_B, TwinGAN
from twingan.options import MAX_SIZE
from twingan.schedule import build_phases, phase_at

log = logging.getLogger(__name__)
Direction = Literal["a2b", "b2a"]
DIRECTIONS: dict[str, tuple[int, int]] = {"a2b": (DOMAIN_A, DOMAIN_B), "b2a": (DOMAIN_B, DOMAIN_A)}


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


def to_picture(x: Tensor) -> Image.Image:
    """CHW float in [0, 1] -> PIL picture, rounding down as torchvision's to_pil_image does."""
    array = x.detach().cpu().mul(255).byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


class Translator:
    """A checkpoint's inference networks, loaded once, on one device."""

    def __init__(self, cfg: RunConfig, state: dict, device: torch.device, source: str,
                 illust2vec_weights: str | Path | None = None) -> None:
        self.cfg, self.device, self.source = cfg, device, source
        self.channels = int(state.get("image_channels", 3))
        self.model = cfg.model.name
        self.character = getattr(cfg.model, "character", "none")
        self.illust2vec_weights = illust2vec_weights or getattr(cfg.model, "illust2vec_weights", None)
        self.images_seen = int(state.get("images_seen", 0))
        self.reached = reached_resolution(cfg, self.images_seen)
        self._tag_code: nn.Module | None = None
        try:
            if self.model == "twingan":
                net: nn.Module = TwinGAN(cfg.model, self.channels)
                net.load_state_dict(state["ema"])
            else:
                net = nn.ModuleList(build_generator(cfg.model, self.channels) for _ in (DOMAIN_A, DOMAIN_B))
                net.load_state_dict(state["gens"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint {source} does not hold the networks its config describes "
                            f"({str(exc).splitlines()[0][:200]})") from None
        self.net = net.eval().requires_grad_(False).to(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto",
                        illust2vec_weights: str | Path | None = None) -> Translator:
        """Load a checkpoint file, or a run folder's newest checkpoint, onto `device` (auto, cpu, cuda).

        `illust2vec_weights` replaces the path recorded in a checkpoint trained with the illust2vec
        character source (needed only to take the code of a reference picture)."""
        resolved = find_checkpoint(path)
        state = load_checkpoint(resolved)
        cfg = config_from_dict(state.get("config"), f"checkpoint {resolved}")
        translator = cls(cfg, state, pick_device(device), str(resolved), illust2vec_weights)
        if translator.reached < cfg.model.resolution:
            log.warning("checkpoint %s stopped growing at %d px after %s images, before its final %d px: it works "
                        "at %d px (layers above that did not finish training)", resolved, translator.reached,
                        f"{translator.images_seen:,}", cfg.model.resolution, translator.reached)
        return translator

    @property
    def resolution(self) -> int:
        """The largest size the checkpoint finished training at, and the default output size: its
        final resolution, or less for a Twin-GAN run stopped while still growing."""
        return self.reached

    def check_size(self, size: int) -> None:
        """Refuse sizes the networks cannot take, naming the ones they can."""
        final = self.cfg.model.resolution
        if self.model == "twingan":
            low = min(8, self.reached)
            ok = low <= size <= final and size & (size - 1) == 0
            trained = f" (it finished training at {self.reached} px)" if self.reached < final else ""
            allowed = f"a power of two from {low} to {final}{trained}"
        elif self.cfg.model.generator == "resnet":
            ok, allowed = 8 <= size <= MAX_SIZE and size % 4 == 0, f"a multiple of 4 from 8 to {MAX_SIZE}"
        else:
            step = 2**self.cfg.model.unet_downs
            ok, allowed = step <= size <= MAX_SIZE and size % step == 0, f"a multiple of {step} up to {MAX_SIZE}"
        if not ok:
            raise UserError(f"size {size} does not suit this {self.model} model: use {allowed}")

    # ----------------------------------------------------------------- character codes
    def check_character(self, what: str) -> None:
        """Refuse `what` (a reference, tags) on a model that learned no character codes, naming the checkpoint."""
        if self.character == "none":
            raise UserError(f"{what} needs a model trained with a character source (model.character learned or "
                            f"illust2vec); checkpoint {self.source} has none")

    @torch.no_grad()
    def character_code(self, reference: Image.Image) -> Tensor:
        """The (1, code) character code of an anime picture, from the source the model was trained with."""
        self.check_character("a target character")
        if self.character == "learned":
            return self.net.character(self.prepare(reference)[None].to(self.device))
        if self._tag_code is None:
            from twingan.character import load_tag_code

            self._tag_code = load_tag_code(self.illust2vec_weights, self.cfg.model.character_tags, self.device)
        return self._tag_code(to_tensor(to_rgb(reference))[None].to(self.device))

    def tags_code(self, tags: list[str]) -> Tensor:
        """A (1, code) code with the named tags on and every other attribute off (illust2vec source)."""
        self.check_character("--tags")
        if self.character != "illust2vec":
            raise UserError("--tags sets illust2vec attributes; this model learned its own character codes "
                            "(model.character=learned): give a reference picture instead")
        known = self.cfg.model.character_tags
        unknown = [t for t in tags if t not in known]
        if unknown:
            raise UserError(f"tag(s) {', '.join(map(repr, unknown))} are not among this model's character tags: "
                            f"{', '.join(known)}")
        code = torch.zeros(1, len(known), device=self.device)
        code[0, [known.index(t) for t in tags]] = 1.0
        return code

    # ----------------------------------------------------------------- tensors in [-1, 1]
    @torch.no_grad()
    def run(self, x: Tensor, direction: Direction = "a2b", cycle: bool = False,
            character: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """NCHW in [-1, 1] at a valid size -> the translation (and, with `cycle`, its way back).

        `character` (a (1, code) or (N, code) code) shapes every anime output; without it a model
        with a character source uses the mean code of its training pictures."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be a2b or b2a, not {direction!r}")
        self.check_size(x.shape[-1])
        src, dst = DIRECTIONS[direction]
        if character is not None and dst != DOMAIN_B and not cycle:
            raise UserError("a character shapes anime output, and this direction (b2a) makes photos")
        x = x.to(self.device, torch.float32)
        out = self.one_way(x, src, dst, character)
        if not cycle:
            return out
        return out, self.one_way(out, dst, src, character)

    def one_way(self, x: Tensor, src: int, dst: int, character: Tensor | None = None) -> Tensor:
        """Domain `src` -> `dst` on NCHW in [-1, 1], without size checks (for export tracing)."""
        if self.model != "twingan":
            return self.net[src](x)
        size = x.shape[-1]
        condition = None
        if dst == DOMAIN_B and self.character != "none":
            code = self.net.character_mean[None] if character is None else character.to(self.device, torch.float32)
            condition = code.expand(x.shape[0], -1)
        latent, skips = self.net.encoder(x, src, size)
        return self.net.generator(latent, skips, dst, size, condition=condition).clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, domain: int) -> Tensor:
        """Same-domain reconstruction of NCHW in [-1, 1]: Twin-GAN encodes and decodes in one domain
        (anime with each picture's own character code when the model learned codes); CycleGAN maps
        a picture through the generator that makes its own domain (its identity mapping)."""
        x = x.to(self.device, torch.float32)
        if self.model != "twingan":
            return self.net[1 - domain](x)
        own = self.net.character(x) if domain == DOMAIN_B and self.character == "learned" else None
        return self.one_way(x, domain, domain, own)

    # ----------------------------------------------------------------- pictures
    def prepare(self, image: Image.Image, size: int | None = None) -> Tensor:
        """A picture -> a CHW tensor in [-1, 1] at `size`, resized as the model's training data was."""
        size = self.resolution if size is None else size
        image = to_rgb(image)
        if self.channels == 1:
            image = image.convert("L")
        return to_tensor(resize_for_model(image, size, self.cfg.data.resize))

    @overload
    def translate(self, image: Image.Image, direction: Direction = "a2b", size: int | None = None,
                  character: Image.Image | Tensor | None = None) -> Image.Image: ...

    @overload
    def translate(self, image: Tensor, direction: Direction = "a2b", size: int | None = None,
                  character: Image.Image | Tensor | None = None) -> Tensor: ...

    def translate(self, image: Image.Image | Tensor, direction: Direction = "a2b", size: int | None = None,
                  character: Image.Image | Tensor | None = None) -> Image.Image | Tensor:
        """Translate one PIL picture (-> PIL) or a float tensor in [0, 1], CHW or NCHW (-> same layout).

        Output is `size` x `size` (default: the trained resolution); tensors are resized to it.
        `character`: a reference anime picture (or a code from `character_code`/`tags_code`) whose
        look the anime output takes.
        """
        size = self.resolution if size is None else size
        if isinstance(character, Image.Image):
            character = self.character_code(character)
        if isinstance(image, Image.Image):
            out = self.run(self.prepare(image, size)[None], direction, character=character)[0]
            return to_picture(out.add(1).div(2).clamp(0, 1))
        if not isinstance(image, Tensor) or image.dim() not in (3, 4):
            raise TypeError("translate takes a PIL image or a float tensor of shape (C, H, W) or (N, C, H, W)")
        batch = image[None] if image.dim() == 3 else image
        if batch.shape[1] != self.channels:
            raise ValueError(f"this model takes {self.channels}-channel pictures, got {batch.shape[1]} channels")
        if batch.shape[-2:] != (size, size):
            batch = F.interpolate(batch.float(), size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)
        out = self.run(batch.float() * 2 - 1, direction, character=character).add(1).div(2).clamp(0, 1)
        return out[0] if image.dim() == 3 else out


def reached_resolution(cfg: RunConfig, images_seen: int) -> int:
    """The resolution a run had finished growing to after `images_seen` images: the current
    phase's while it is stable, the one before while a new one fades in (Twin-GAN; CycleGAN
    trains at one size from the start)."""
    if cfg.model.name != "twingan":
        return cfg.model.resolution
    phases = build_phases(cfg.train.start_resolution, cfg.model.resolution, cfg.train.phase_images,
                          cfg.train.final_phase_images)
    phase = phase_at(phases, images_seen)
    return phase.resolution // 2 if phase.fading else phase.resolution
