"""Inference: a trained checkpoint as a picture-in, picture-out translator (the Python API).

    from twingan.infer.translator import Translator
    translator = Translator.pretrained()                          # the model shipped in the package
    translator = Translator.from_checkpoint("runs/cpu64")         # or a run folder or a ckpt-*.pt
    anime = translator.translate(Image.open("me.jpg"))            # PIL in, PIL out
    photo = translator.translate(anime, direction="b2a")

`translate` takes the whole picture to the model's size; finding the faces of a large photo and
pasting their translations back, as `twingan translate` does for a scene, is
`twingan.infer.face_paste.translate_faces`.

The checkpoint's family (twingan.models) builds its inference networks and says which sizes they
take; this class adds what every family shares: checkpoint lookup, devices, pictures in and out,
directions and character codes. Networks run in eval mode (batch norm uses its running
statistics and dropout is off), so the same picture and checkpoint always give the same output,
whatever else is in the batch.

This module deliberately avoids torchvision and kornia, as twingan.data.pictures does: importing
torchvision pulls in torch._dynamo (1.4 s on a 2-core machine), which would double the time a
one-picture `twingan translate` spends before it starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from twingan.bundled import PREFIX, BundledModel, load_bundled
from twingan.checkpoint import find_checkpoint, load_checkpoint
from twingan.config import RunConfig, config_from_dict
from twingan.data.images import to_rgb
from twingan.data.pictures import MAX_SIZE, resize_for_model, to_picture, to_tensor, to_unit_range
from twingan.distributed import pick_device
from twingan.domains import DIRECTIONS, refuse_character_for
from twingan.errors import UserError
from twingan.models import family
from twingan.weights import file_sha256

if TYPE_CHECKING:
    from twingan.infer.video import VideoReport

log = logging.getLogger(__name__)
Direction = Literal["a2b", "b2a"]


class Translator:
    """A checkpoint's inference networks, loaded once, on one device."""

    def __init__(self, cfg: RunConfig, state: dict, device: torch.device, source: str,
                 illust2vec_weights: str | Path | None = None) -> None:
        self.cfg, self.device, self.source = cfg, device, source
        self.channels = int(state.get("image_channels", 3))
        self.model = cfg.model.name
        self.illust2vec_weights = illust2vec_weights or getattr(cfg.model, "illust2vec_weights", None)
        self.images_seen = int(state.get("images_seen", 0))
        try:
            self.inference = family(self.model).inference(cfg, state, self.channels)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"{source} does not hold the networks its config describes "
                            f"({' '.join(str(exc).split())[:300]})") from None
        self.character = self.inference.character
        self.reached = self.inference.resolution
        self.net = self.inference.net.eval().requires_grad_(False).to(device)
        self.file: Path | None = None
        """The checkpoint file the networks came from (None for a bundled model)."""
        self.bundled: BundledModel | None = None
        """The bundled model the networks came from, if they did."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto",
                        illust2vec_weights: str | Path | None = None) -> Translator:
        """Load a checkpoint file, or a run folder's newest checkpoint, onto `device` (auto, cpu, cuda).

        `illust2vec_weights` replaces the path recorded in a checkpoint trained with the illust2vec
        character source (needed only to take the code of a reference picture)."""
        resolved = find_checkpoint(path)
        state = load_checkpoint(resolved)
        cfg = config_from_dict(state.get("config"), f"checkpoint {resolved}")
        translator = cls(cfg, state, pick_device(device), f"checkpoint {resolved}", illust2vec_weights)
        if translator.reached < cfg.model.resolution:
            log.warning("checkpoint %s stopped growing at %d px after %s images, before its final %d px: it works "
                        "at %d px (layers above that did not finish training)", resolved, translator.reached,
                        f"{translator.images_seen:,}", cfg.model.resolution, translator.reached)
        translator.file = resolved
        return translator

    @classmethod
    def pretrained(cls, name: str | None = None, device: str = "auto",
                   illust2vec_weights: str | Path | None = None) -> Translator:
        """A model shipped inside the package (`twingan models` lists them; default: the first),
        checked against the SHA-256 the package recorded for it."""
        model, state = load_bundled(name)
        cfg = config_from_dict(state["config"], f"bundled model {model.name}")
        translator = cls(cfg, state, pick_device(device), f"bundled model {model.name}", illust2vec_weights)
        translator.bundled = model
        return translator

    @classmethod
    def load(cls, checkpoint: str | Path | None, device: str = "auto",
             illust2vec_weights: str | Path | None = None) -> Translator:
        """A checkpoint (file or run folder), or the default bundled model when `checkpoint` is None."""
        if checkpoint is None:
            return cls.pretrained(device=device, illust2vec_weights=illust2vec_weights)
        return cls.from_checkpoint(checkpoint, device, illust2vec_weights)

    def identity(self) -> tuple[str, str]:
        """What a neighbour index records of the weights that made its vectors: the checkpoint's
        path, or "bundled:NAME" (so the index still finds a bundled model after the package moves),
        and the file's SHA-256 (so vectors of other weights are never mixed in)."""
        if self.bundled is not None:
            return PREFIX + self.bundled.name, self.bundled.sha256
        if self.file is None:
            raise ValueError("this Translator was built from a state in memory: no file identifies its weights")
        return str(self.file.resolve()), file_sha256(self.file)

    @property
    def resolution(self) -> int:
        """The largest size the checkpoint finished training at, and the default output size: its
        final resolution, or less for a Twin-GAN run stopped while still growing."""
        return self.reached

    def check_size(self, size: int) -> None:
        """Refuse sizes the networks cannot take, naming the ones they can."""
        allowed = self.inference.size_refusal(size, MAX_SIZE)
        if allowed is not None:
            raise UserError(f"size {size} does not suit this {self.model} model: use {allowed}")

    # ----------------------------------------------------------------- character codes
    def check_character(self, what: str, direction: Direction | None = None) -> None:
        """Refuse `what` (a reference, tags) on a model that learned no character codes, naming the
        checkpoint, and for a `direction` that makes photos."""
        if direction is not None:
            refuse_character_for(direction, what)
        if self.character == "none":
            raise UserError(f"{what} needs a model trained with a character source (model.character learned or "
                            f"illust2vec); {self.source} has none")

    @torch.no_grad()
    def character_code(self, reference: Image.Image) -> Tensor:
        """The (1, code) character code of an anime picture, from the source the model was trained with."""
        self.check_character("a target character")
        prepared = self.prepare(reference)[None].to(self.device)
        return self.inference.character_code(prepared, lambda: to_tensor(to_rgb(reference))[None].to(self.device),
                                             self.illust2vec_weights)

    def tags_code(self, tags: list[str]) -> Tensor:
        """A (1, code) code with the named tags on and every other attribute off (illust2vec source)."""
        self.check_character("--tags")
        return self.inference.tags_code(tags).to(self.device)

    def mean_code(self) -> Tensor:
        """The (1, code) mean character code of the training pictures: anime output's look when no
        reference is given."""
        self.check_character("a character code")
        return self.inference.mean_code()

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
        if character is not None and not cycle:
            refuse_character_for(direction)
        x = x.to(self.device, torch.float32)
        out = self.one_way(x, src, dst, character)
        if not cycle:
            return out
        return out, self.one_way(out, dst, src, character)

    def one_way(self, x: Tensor, src: int, dst: int, character: Tensor | None = None) -> Tensor:
        """Domain `src` -> `dst` on NCHW in [-1, 1], without size checks (for export tracing)."""
        return self.inference.one_way(x, src, dst, character)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, domain: int) -> Tensor:
        """Same-domain reconstruction of NCHW in [-1, 1], as the checkpoint's family defines it
        (Twin-GAN encodes and decodes in one domain; CycleGAN uses its identity mapping)."""
        return self.inference.reconstruct(x.to(self.device, torch.float32), domain)

    # ----------------------------------------------------------------- pictures
    def prepare(self, image: Image.Image, size: int | None = None) -> Tensor:
        """A picture -> a CHW tensor in [-1, 1] at `size`, resized as the model's training data was."""
        size = self.resolution if size is None else size
        image = to_rgb(image)
        if self.channels == 1:
            image = image.convert("L")
        return to_tensor(resize_for_model(image, size, self.cfg.data.resize))

    def prepare_batch(self, pictures: list[Image.Image], size: int | None = None) -> Tensor:
        """Pictures -> one NCHW batch in [-1, 1] at `size`."""
        return torch.stack([self.prepare(picture, size) for picture in pictures])

    @staticmethod
    def pictures_of(batch: Tensor) -> list[Image.Image]:
        """Model output (NCHW in [-1, 1]) -> PIL pictures."""
        return [to_picture(to_unit_range(x)) for x in batch.cpu()]

    def translate_pictures(self, pictures: list[Image.Image], direction: Direction = "a2b", size: int | None = None,
                           character: Image.Image | Tensor | None = None,
                           batch_size: int = 16) -> list[Image.Image]:
        """The one path from pictures to the model and back, `batch_size` pictures a call:
        `prepare_batch`, `run`, `pictures_of`. Files, face crops and video frames take it whole; the
        server takes the same three steps in its own threads (it batches across requests)."""
        size = self.resolution if size is None else size
        self.check_size(size)
        if isinstance(character, Image.Image):
            character = self.character_code(character)
        translated = []
        for start in range(0, len(pictures), batch_size):
            batch = self.prepare_batch(pictures[start:start + batch_size], size)
            translated += self.pictures_of(self.run(batch, direction, character=character))
        return translated

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
        if isinstance(image, Image.Image):
            return self.translate_pictures([image], direction, size, character)[0]
        size = self.resolution if size is None else size
        if isinstance(character, Image.Image):
            character = self.character_code(character)
        if not isinstance(image, Tensor) or image.dim() not in (3, 4):
            raise TypeError("translate takes a PIL image or a float tensor of shape (C, H, W) or (N, C, H, W)")
        batch = image[None] if image.dim() == 3 else image
        if batch.shape[1] != self.channels:
            raise ValueError(f"this model takes {self.channels}-channel pictures, got {batch.shape[1]} channels")
        if batch.shape[-2:] != (size, size):
            batch = F.interpolate(batch.float(), size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)
        out = to_unit_range(self.run(batch.float() * 2 - 1, direction, character=character))
        return out[0] if image.dim() == 3 else out

    def translate_video(self, path: str | Path, out: str | Path, direction: Direction = "a2b",
                        size: int | None = None, face: bool = False, stable: bool = True, batch_size: int = 8,
                        character: Image.Image | Tensor | None = None, progress: bool = True) -> VideoReport:
        """Translate a video file into `out` (mp4, mov, mkv, webm or avi), keeping its frame rate, size
        and audio: whole frames, or with `face` each tracked face; `stable` keeps still parts steady.
        See twingan.infer.video."""
        from twingan.infer.video import translate_video

        if isinstance(character, Image.Image):
            self.check_character("a target character", direction)
            character = self.character_code(character)
        return translate_video(self, Path(path), Path(out), direction, size, face, stable, batch_size,
                               character, progress)
