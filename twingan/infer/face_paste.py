"""Face mode: cut every face out of a picture at the model's size, and paste the translated faces
back without a seam. Used by `twingan translate --face` (a picture's faces through the networks in
one batch), by videos and by the server (all faces of a batch of requests in one call, so cropping
and pasting are apart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from twingan.infer.translator import Translator

FaceBoxes = list[tuple[int, int, int, int]]
FACE_MODE_SIDE = 512
"""A picture whose shorter side exceeds this is taken for a scene with a face in it (a phone photo),
not a face crop like the training pictures (128-256 px): face mode "auto" (the web page, and
`twingan translate` without --face/--no-face) translates only its faces."""
FACE_KIND = {"a2b": "photo", "b2a": "anime"}
"""The face detector for each direction's input."""


def is_scene(size: tuple[int, int]) -> bool:
    """Whether face mode "auto" treats a picture (or video frame) of `size` as a scene (see FACE_MODE_SIDE)."""
    return min(size) > FACE_MODE_SIDE


def face_mask(side: int) -> np.ndarray:
    """(side, side) weights in [0, 1]: 1 over the face's oval, falling smoothly to 0 well inside
    the square's edges.

    The square `prepare` cuts is 1.5 times the face: its border holds hair and background, which
    the generator paints worst (smeared, banded rows at the top of a 64 px output). A mask that
    stayed opaque up to 15% from the edges, as the first one did, pasted those rows over the
    photo as a translucent band; the oval keeps the face, brow and chin and lets the photo show
    everywhere else."""
    centre = (side - 1) / 2
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    radius = np.hypot((xx - centre) / (0.40 * side), (yy - centre - 0.04 * side) / (0.42 * side))
    t = np.clip((1.0 - radius) / 0.35, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)  # smoothstep: no visible edge where the ramp starts or ends


def blend_face(photo: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`face` blended into `photo` (float HWC arrays of one size) through `mask`, its colours
    matched to the photo where the two meet.

    Each channel of the face is shifted by the difference of the two pictures' means over the
    mask's half-transparent ring, fully at the rim and not at all at the centre: a translation
    whose overall tone differs from the photo's (paler skin, a green cast) then meets the photo
    without a halo, while the face itself keeps the translated colours."""
    ring = (mask > 0.05) & (mask < 0.6)
    weight = mask[..., None]
    if ring.any():
        offset = photo[ring].mean(0) - face[ring].mean(0)
        face = face + offset * (1.0 - weight)
    return photo * (1.0 - weight) + face * weight


def face_crops(picture: Image.Image, direction: str, size: int) -> tuple[FaceBoxes, list[Image.Image]]:
    """Every detected face as the square `twingan prepare` makes for training, at the model's size.

    The boxes are those squares in the picture's pixels, for `paste_faces`; none when no face is found.
    """
    from twingan.infer.faces import detect_faces, square_crop_box  # scikit-image: 0.2 s that only face mode needs

    boxes = [square_crop_box(face, picture.size) for face in detect_faces(picture, FACE_KIND[direction])]
    return boxes, [picture.resize((size, size), Image.Resampling.LANCZOS, box=box) for box in boxes]


def paste_faces(picture: Image.Image, boxes: FaceBoxes, patches: list[Image.Image]) -> Image.Image:
    """The picture with each translated face scaled back into its box and blended in along the
    face's own outline (`face_mask`, `blend_face`), so neither the square nor a colour step shows."""
    result = np.asarray(picture.convert("RGB"), dtype=np.float64).copy()
    for box, patch in zip(boxes, patches):
        left, top, right, bottom = box
        side = right - left
        face = np.asarray(patch.convert("RGB").resize((side, side), Image.Resampling.LANCZOS), dtype=np.float64)
        result[top:bottom, left:right] = blend_face(result[top:bottom, left:right], face, face_mask(side))
    pasted = Image.fromarray(np.clip(np.rint(result), 0, 255).astype(np.uint8))
    return pasted if picture.mode == "RGB" else pasted.convert(picture.mode)


def translate_faces(translator: Translator, picture: Image.Image, direction: str, size: int,
                    character: torch.Tensor | None = None) -> Image.Image | None:
    """The picture with every detected face translated and blended back in; None without a face."""
    boxes, crops = face_crops(picture, direction, size)
    if not boxes:
        return None
    return paste_faces(picture, boxes, translator.translate_pictures(crops, direction, size, character))
