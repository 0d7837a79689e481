"""What the server does with a picture, split by where it runs.

`plan` (face detection, cropping, resizing) and `compose` (pasting faces back, PNG encoding)
run in request threads, several at once; `translate_batch` and `neighbours_batch` run in the
single model thread (see batcher.py) on every request that arrived together. Face mode fits
that split: each face of each photo is one tile, and all tiles of a batch go through the
networks in one call.
"""

from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from twingan.data.images import BadImage, load_image
from twingan.errors import UserError
from twingan.infer.face_paste import FaceBoxes, face_crops, is_scene, paste_faces
from twingan.infer.translator import Translator
from twingan.search.embedding import Embedder, index_translator
from twingan.search.index import Index

FaceMode = Literal["auto", "on", "off"]
FACE_MODE_LONG_SIDE = 1024
"""Face-mode results are at most this long: the faces themselves carry only the model's pixels."""
THUMB_SIDE = 128
CPU_BATCH_PIXELS = 2 * 256 * 256
"""On a CPU, model calls over this many input pixels brought no more throughput, only longer waits
and more memory (tools/bench_serve.py, 2 cores, 256 px: 6.3-7.5 requests/s at 2 a call over three
runs, 6.3-6.8 one at a time over two, 5.8 at up to 8). At 64 px batching nearly doubles it
(73-79 requests/s against 39-44 one at a time)."""
GPU_BATCH = 16
"""Tiles per model call on a GPU (not measured: no GPU was at hand)."""
MAX_ID = 2**63 - 1
"""The largest id (and offset) SQLite can hold: a larger number cannot name a picture."""


@dataclass
class Plan:
    """One request's picture made ready for the model: one tile per face, or one for the whole picture."""

    tiles: torch.Tensor
    picture: Image.Image | None = None
    boxes: FaceBoxes = field(default_factory=list)
    reference: Image.Image | None = None
    character: torch.Tensor | None = None

    @property
    def faces(self) -> int:
        return len(self.boxes)


class NotInIndex(Exception):
    """A picture id the index does not hold (or whose file is gone): the server's 404."""


class Service:
    """A loaded checkpoint (and optionally its neighbour index) answering the server's requests."""

    def __init__(self, translator: Translator, index: Index | None = None) -> None:
        self.translator = translator
        self.index = index
        self.embedder = Embedder(translator) if index is not None else None
        self._index_lock = threading.Lock()  # sqlite and FAISS calls from request and model threads

    @classmethod
    def load(cls, checkpoint: str | Path | None, index: str | Path | None = None, device: str = "auto",
             illust2vec_weights: str | Path | None = None) -> Service:
        """Load the model once: `checkpoint`, or else the index's own model, or else the bundled
        one. An index is served only with the model its vectors were made with."""
        if index is None:
            return cls(Translator.load(checkpoint, device, illust2vec_weights))
        opened = Index.open(index)
        return cls(index_translator(opened, checkpoint, device, illust2vec_weights), opened)

    def batch_limit(self) -> int:
        """Tiles per model call: the default for --max-batch, and the chunk size of a face-mode batch."""
        if self.translator.device.type == "cuda":
            return GPU_BATCH
        return max(1, CPU_BATCH_PIXELS // self.translator.resolution**2)

    # ----------------------------------------------------------------- request threads
    def plan(self, picture: Image.Image, direction: str, face: FaceMode) -> Plan:
        """Tiles for the model: the faces (face mode) or the whole picture; 422 if face mode finds none."""
        size = self.translator.resolution
        if face == "on" or (face == "auto" and is_scene(picture.size)):
            picture = _shrink(picture, FACE_MODE_LONG_SIDE)
            boxes, crops = face_crops(picture, direction, size)
            if boxes:
                return Plan(self.translator.prepare_batch(crops, size), picture, boxes)
            if face == "on":
                raise UserError("no face found in the photo; send a closer portrait or turn face mode off")
        return Plan(self.translator.prepare_batch([picture], size))

    def set_character(self, plan: Plan, reference: Image.Image | None, tags: list[str] | None,
                      direction: str) -> None:
        """Attach a reference picture (its code is taken in the model thread) or a tag code to the plan."""
        if reference is None and not tags:
            return
        self.translator.check_character("a reference character" if reference is not None else "a tag code", direction)
        if tags:
            plan.character = self.translator.tags_code(tags)
        else:
            plan.reference = reference

    def compose(self, plan: Plan, output: torch.Tensor) -> bytes:
        """Model output tiles -> the response PNG: the picture with its faces replaced, or the one tile."""
        pictures = self.translator.pictures_of(output)
        result = paste_faces(plan.picture, plan.boxes, pictures) if plan.boxes else pictures[0]
        buffer = io.BytesIO()
        result.save(buffer, format="PNG")
        return buffer.getvalue()

    # ----------------------------------------------------------------- model thread
    def translate_batch(self, plans: list[Plan], direction: str) -> list[torch.Tensor]:
        """All tiles of all plans through the networks, `batch_limit` tiles a call."""
        tiles = torch.cat([p.tiles for p in plans])
        codes = self._codes(plans, direction)
        outputs, step = [], self.batch_limit()
        for start in range(0, len(tiles), step):
            part = None if codes is None else codes[start:start + step]
            outputs.append(self.translator.run(tiles[start:start + step], direction, character=part).cpu())
        return list(torch.cat(outputs).split([len(p.tiles) for p in plans]))

    def _codes(self, plans: list[Plan], direction: str) -> torch.Tensor | None:
        """One character code per tile (each plan's own, else the training mean), or None without conditioning."""
        if direction != "a2b" or self.translator.character == "none":
            return None
        mean = self.translator.mean_code()
        rows = []
        for plan in plans:
            code = plan.character if plan.character is not None else (
                self.translator.character_code(plan.reference) if plan.reference is not None else mean)
            rows.append(code.to(mean.device).expand(len(plan.tiles), -1))
        return torch.cat(rows)

    def neighbours_batch(self, queries: list[tuple[Plan, int]]) -> list[dict[str, list[dict]]]:
        """For each (plan, k): the k nearest anime pictures and photos to the plan's first tile (its largest face)."""
        assert self.embedder is not None and self.index is not None
        vectors = self.embedder.embed(torch.stack([plan.tiles[0] for plan, _ in queries]), "a")
        vectors = self.index.transform(vectors, "a")
        k = max(k for _, k in queries)
        with self._index_lock:
            found = {d: self.index.search_vectors(vectors, k, d) for d in ("b", "a")}
        return [{"anime": [_hit(h) for h in found["b"][i][:want]], "photos": [_hit(h) for h in found["a"][i][:want]]}
                for i, (_, want) in enumerate(queries)]

    # ----------------------------------------------------------------- the index's pictures
    def gallery(self, offset: int, limit: int) -> tuple[int, list[dict]]:
        """A page of the index's anime pictures, for picking a reference character."""
        if self.index is None:
            return 0, []
        with self._index_lock:
            rows = self.index.pictures("b", offset, limit)
            total = self.index.count("b")
        return total, [{"id": i, "name": Path(p).name, "url": f"/api/pictures/{i}"} for i, p in rows]

    def indexed_picture(self, picture_id: int, domain: str | None = None) -> Image.Image:
        """An indexed picture by id (never by a client's path), of `domain` when given; NotInIndex
        if there is none."""
        if self.index is None:
            raise NotInIndex("this server has no index: start it with --index")
        if not 0 <= picture_id <= MAX_ID:
            raise NotInIndex(f"the index holds no picture {picture_id}")
        with self._index_lock:
            row = self.index.picture(picture_id)
        if row is None:
            raise NotInIndex(f"the index holds no picture {picture_id}")
        if domain is not None and row[0] != domain:
            kinds = {"a": "a photo", "b": "an anime picture"}
            raise NotInIndex(f"picture {picture_id} is {kinds[row[0]]}, not {kinds[domain]}")
        try:
            return load_image(row[1])
        except BadImage:
            raise NotInIndex(f"indexed picture {picture_id} ({Path(row[1]).name}) can no longer be read") from None

    @functools.lru_cache(maxsize=512)
    def thumbnail(self, picture_id: int) -> bytes:
        """A JPEG thumbnail of an indexed picture, made once (the gallery shows the same ones to everyone)."""
        picture = self.indexed_picture(picture_id)
        picture.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()


def _shrink(picture: Image.Image, long_side: int) -> Image.Image:
    if max(picture.size) <= long_side:
        return picture
    scaled = picture.copy()
    scaled.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    return scaled


def _hit(hit) -> dict:
    return {"rank": hit.rank, "distance": round(float(hit.distance), 6), "id": hit.id,
            "name": Path(hit.path).name, "url": f"/api/pictures/{hit.id}"}
