"""Pictures -> shared-latent vectors: the encoder of a checkpoint whose family has one (Twin-GAN).

Photos and anime pictures meet in one latent space (the encoder's 4x4xC output), which is what
makes "which anime characters look like me?" answerable by a nearest-neighbour search.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from twingan.bundled import PREFIX, bundled_model
from twingan.checkpoint import find_checkpoint
from twingan.data.images import BadImage, has_text_name, load_image
from twingan.domains import DOMAIN_BY_LETTER
from twingan.errors import UserError
from twingan.infer.translator import Translator
from twingan.search.index import Hit, Index
from twingan.weights import file_sha256


def index_translator(index: Index, checkpoint: str | Path | None = None, device: str = "auto",
                     illust2vec_weights: str | Path | None = None) -> Translator:
    """The model that made the index's vectors: the checkpoint or bundled model it recorded, or
    `checkpoint` when that file has moved. The SHA-256 is compared before anything is loaded, and
    other weights are refused, since their vectors would not be comparable."""
    recorded, expected = index.settings.checkpoint, index.settings.checkpoint_sha256
    name = recorded.removeprefix(PREFIX) if recorded.startswith(PREFIX) else None
    if checkpoint is None and name is not None:
        if bundled_model(name).sha256 != expected:
            raise UserError(f"bundled model {name} has changed since index {index.path} was built with it (another "
                            "TwinGAN version): build the index again")
        return Translator.pretrained(name, device, illust2vec_weights)
    if checkpoint is None and not Path(recorded).exists():
        raise UserError(f"index {index.path} was built with checkpoint {recorded}, which is not there any more: "
                        "give its new place with --checkpoint")
    path = find_checkpoint(checkpoint or recorded)
    if file_sha256(path) != expected:
        advice = ("leave out --checkpoint" if name is not None else "use that checkpoint") + " or build a new index"
        raise UserError(f"checkpoint {path} is not the one index {index.path} was built with ({recorded}, "
                        f"SHA-256 {expected[:12]}...): its vectors would not be comparable; {advice}")
    return Translator.from_checkpoint(path, device, illust2vec_weights)


@dataclass
class Embedded:
    """Vectors for the pictures that loaded, in order, and the ones that did not."""

    vectors: np.ndarray
    paths: list[Path] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Embedder:
    """The encoder half of a checkpoint whose family has a shared latent space."""

    def __init__(self, translator: Translator) -> None:
        missing = translator.inference.no_shared_latent
        if missing is not None:
            raise UserError(f"{translator.source} is a {translator.model} model; the shared-latent "
                            f"search needs Twin-GAN ({missing})")
        self.translator = translator
        self.resolution = translator.resolution

    @property
    def dim(self) -> int:
        return int(self.embed(torch.zeros(1, self.translator.channels, self.resolution, self.resolution), "a").shape[1])

    @torch.no_grad()
    def embed(self, batch: torch.Tensor, domain: str) -> np.ndarray:
        """NCHW in [-1, 1] at the model's size -> (N, 4*4*C) float32."""
        latent = self.translator.inference.encode(batch.to(self.translator.device), DOMAIN_BY_LETTER[domain],
                                                  self.resolution)
        return latent.float().cpu().numpy()

    def embed_picture(self, picture: Image.Image, domain: str) -> np.ndarray:
        return self.embed(self.translator.prepare(picture)[None], domain)

    def embed_files(self, paths: list[Path], domain: str, batch_size: int = 32, progress: bool = True) -> Embedded:
        """Embed pictures in batches; unreadable ones are listed in `failed`, not fatal."""
        out = Embedded(np.zeros((0, 0), np.float32))
        chunks = []
        label = {"a": "photos (a)", "b": "anime (b)"}[domain]
        with tqdm(total=len(paths), unit="picture", desc=f"encoding {label}", disable=not progress) as bar:
            for start in range(0, len(paths), batch_size):
                ready = []
                for path in paths[start:start + batch_size]:
                    if not has_text_name(path):  # the index's SQLite table holds text paths only
                        out.failed.append(f"{str(os.fsencode(path))[2:-1]}: file name is not valid UTF-8 (rename it)")
                        bar.update(1)
                        continue
                    try:
                        ready.append(self.translator.prepare(load_image(path, grayscale=self.translator.channels == 1)))
                        out.paths.append(path)
                        out.hashes.append(file_sha256(path))
                    except BadImage as exc:
                        out.failed.append(str(exc))
                    bar.update(1)
                if ready:
                    chunks.append(self.embed(torch.stack(ready), domain))
        out.vectors = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
        return out


def search_pictures(index: Index, pictures: list[Image.Image], k: int = 8, domain: str = "b",
                    query_domain: str = "a", checkpoint: str | Path | None = None,
                    device: str = "auto") -> list[list[Hit]]:
    """The k pictures of `domain` closest to each picture (encoded as `query_domain`), with the
    model that built the index: `twingan neighbors` for Python callers."""
    embedder = Embedder(index_translator(index, checkpoint, device))
    vectors = np.concatenate([embedder.embed_picture(p, query_domain) for p in pictures])
    return index.search_vectors(index.transform(vectors, query_domain), k, domain)
