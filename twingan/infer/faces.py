"""Finding faces and cutting square crops around them, for `twingan prepare` and face-only translation.

Detection uses scikit-image's multi-block LBP cascade detector with two bundled cascades: OpenCV's
frontal-face cascade for photos (shipped inside scikit-image) and nagadomi's anime-face cascade
(twingan/assets). Both work offline, need no extra dependency and cost tens of milliseconds per
picture on one CPU core. The detector releases the GIL, so a thread pool scales with cores.

Tuning, on the first 300 pictures of selfie2anime/trainA and of getchu128 (128 px crops of one
face each; "wrong" = a box off the central face):
- padding the picture by 15% of its long side finds faces cut by the border, as in selfies
  (photo: 192 -> 213 pictures with a face; anime: 296 -> 299), at twice the time;
- counting 5 windows per face (scikit-image's default of 4 kept a false 142 px face on the
  astronaut's suit): photo 213 with a face, 6 wrong boxes (3 windows: 242 and 21);
  anime 299, 2 wrong boxes.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from typing import Literal

import numpy as np
import skimage.data
from PIL import Image, ImageOps
from skimage.feature import Cascade

FaceKind = Literal["photo", "anime"]
FACE_KINDS: tuple[FaceKind, ...] = ("photo", "anime")

DETECT_LONG_SIDE = 512
"""Pictures are searched at most this large: the search time grows with the pixel count."""
_PAD = 0.15
_SCALE_FACTOR = 1.1
_MIN_NEIGHBOURS = 5
_SAME_WINDOWS = 0.5
"""A window joins a cluster whose mean box covers more than this share of it (scikit-image's)."""
_SAME_FACE = 0.1
"""Of two faces overlapping by more than this share of the smaller box, the weaker is dropped:
at 0.5, 23 of 3000 selfies gave a second crop, nearly all a close-up's eye or mouth (0.1: 8)."""
_MIN_SIDE_OF_LARGEST = 0.5
"""Smaller boxes beside a face were false faces (cheeks, collars) far more often than people."""
_LIFT = 0.1


@dataclass(frozen=True)
class FaceBox:
    """A face in full-resolution pixel coordinates; it may reach past a border the face touches."""

    x: int
    y: int
    w: int
    h: int


@functools.cache
def _detector(kind: FaceKind) -> Cascade:
    """The cascade for `kind`, parsed once per process (parsing the XML is the slow part)."""
    if kind == "photo":
        return Cascade(skimage.data.lbp_frontal_face_cascade_filename())
    if kind == "anime":
        xml = importlib.resources.files("twingan") / "assets" / "lbpcascade_animeface.xml"
        with importlib.resources.as_file(xml) as path:
            return Cascade(str(path))
    raise ValueError(f"face kind must be one of {', '.join(FACE_KINDS)}, not {kind!r}")


def detect_faces(image: Image.Image, kind: FaceKind, min_face: int = 24) -> list[FaceBox]:
    """Faces in `image`, largest first.

    The search runs on a grey copy at most DETECT_LONG_SIDE pixels long, so the smallest face
    found is `min_face` full-resolution pixels or the cascade's 24 px window in that copy,
    whichever is larger (about 1/20 of the long side of a big photo).
    """
    detector = _detector(kind)
    gray = image.convert("L")
    factor = min(1.0, DETECT_LONG_SIDE / max(gray.size))
    if factor < 1.0:
        gray = gray.resize((max(1, round(gray.width * factor)), max(1, round(gray.height * factor))),
                           Image.Resampling.BOX)
    pad = round(_PAD * max(gray.size))
    padded = ImageOps.expand(gray, pad, fill=round(float(np.mean(np.asarray(gray)))))
    pixels = np.asarray(padded, dtype=np.float64) / 255.0
    min_side = max(detector.window_width, detector.window_height, round(min_face * factor))
    # A score of 1.0 is never exceeded, so nothing is merged: _group keeps the counts it drops.
    hits = detector.detect_multi_scale(
        img=pixels, scale_factor=_SCALE_FACTOR, step_ratio=1, min_size=(min_side, min_side),
        max_size=pixels.shape, min_neighbor_number=1, intersection_score_threshold=1.0)
    boxes = [(d["c"] - pad, d["r"] - pad, d["width"], d["height"]) for d in hits]
    faces = [FaceBox(x=round(x / factor), y=round(y / factor), w=round(w / factor), h=round(h / factor))
             for x, y, w, h in _group(boxes)]
    return sorted(faces, key=lambda f: (-f.w * f.h, f.y, f.x))


def _group(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """One box per face, from the many windows the cascade accepts around each one.

    Windows are clustered as scikit-image does (each joins the cluster whose mean box it overlaps
    most, by over half of the smaller box), but the cluster sizes are kept, so that of two
    overlapping clusters the better supported one wins. scikit-image returns both (a third of
    the selfies gave a second, nested face), and keeping the larger framed the astronaut's hair.
    """
    sums: list[np.ndarray] = []
    for box in boxes:
        scores = [_overlap(box, tuple(s[:4] / s[4])) for s in sums]
        best = int(np.argmax(scores)) if scores else -1
        if best >= 0 and scores[best] > _SAME_WINDOWS:
            sums[best] += (*box, 1)
        else:
            sums.append(np.array([*box, 1], dtype=np.float64))
    clusters = sorted((s for s in sums if s[4] >= _MIN_NEIGHBOURS), key=lambda s: (-s[4], -s[2]))
    kept: list[tuple[float, float, float, float]] = []
    for cluster in clusters:
        box = tuple(cluster[:4] / cluster[4])
        if all(_overlap(box, other) <= _SAME_FACE for other in kept):
            kept.append(box)
    largest = max((max(w, h) for _, _, w, h in kept), default=0)
    return [box for box in kept if max(box[2], box[3]) >= _MIN_SIDE_OF_LARGEST * largest]


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over the smaller box's area: 1.0 when one box lies inside the other."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, width) * max(0.0, height) / min(a[2] * a[3], b[2] * b[3])


def square_crop_box(face: FaceBox, image_size: tuple[int, int], scale: float = 1.5,
                    lift: float = _LIFT) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) square that frames `face` with room for hair and chin.

    The side is `scale` times the face's larger side, shrunk only to fit the picture; the square
    is shifted, never squashed, to stay inside. Its centre sits `lift` face sides above the
    face's centre: both cascades box brows to chin, and the hair above says more about a
    portrait (and an anime style) than the neck below.
    """
    width, height = image_size
    face_side = max(face.w, face.h)
    side = max(1, min(round(scale * face_side), width, height))
    centre_x = face.x + face.w / 2
    centre_y = face.y + face.h / 2 - lift * face_side
    left = min(max(round(centre_x - side / 2), 0), width - side)
    top = min(max(round(centre_y - side / 2), 0), height - side)
    return left, top, left + side, top + side


def crop_face(image: Image.Image, face: FaceBox, size: int, scale: float = 1.5) -> Image.Image:
    """The square around `face`, resized to size x size with Lanczos (antialiased when shrinking)."""
    box = square_crop_box(face, image.size, scale)
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box)
