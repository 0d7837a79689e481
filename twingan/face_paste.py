"""Face mode: cut every face out of a picture at the model's size, and paste the translated faces
back without a seam. Used by `twingan translate --face` (one picture at a time) and by the server
(all faces of a batch through the networks in one call, so cropping and pasting are apart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from twingan.translator import Translator

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


def feather_mask(side: int, border: float = 0.15) -> Image.Image:
    """An L-mode square mask, opaque in the middle and fading linearly to 0 over the outer `border`."""
    ramp = max(1.0, border * side)
    edge = np.minimum(np.arange(side), np.arange(side)[::-1]) + 0.5
    distance = np.minimum(edge[:, None], edge[None, :])
    return Image.fromarray(np.clip(distance / ramp * 255, 0, 255).astype(np.uint8), mode="L")


def face_crops(picture: Image.Image, direction: str, size: int) -> tuple[FaceBoxes, list[Image.Image]]:
    """Every detected face as the square `twingan prepare` makes for training, at the model's size.

    The boxes are those squares in the picture's pixels, for `paste_faces`; none when no face is found.
    """
    from twingan.faces import detect_faces, square_crop_box  # scikit-image: 0.2 s that only face mode needs

    boxes = [square_crop_box(face, picture.size) for face in detect_faces(picture, FACE_KIND[direction])]
    return boxes, [picture.resize((size, size), Image.Resampling.LANCZOS, box=box) for box in boxes]


def paste_faces(picture: Image.Image, boxes: FaceBoxes, patches: list[Image.Image]) -> Image.Image:
    """The picture with each translated face scaled back into its box through a feathered mask, so no seam shows."""
    result = picture.copy()
    for box, patch in zip(boxes, patches):
        side = box[2] - box[0]
        result.paste(patch.convert(picture.mode).resize((side, side), Image.Resampling.LANCZOS), box[:2],
                     feather_mask(side))
    return result


def translate_faces(translator: Translator, picture: Image.Image, direction: str, size: int,
                    character: torch.Tensor | None = None) -> Image.Image | None:
    """The picture with every detected face translated and blended back in; None without a face."""
    boxes, crops = face_crops(picture, direction, size)
    if not boxes:
        return None
    return paste_faces(picture, boxes, [translator.translate(crop, direction, size, character) for crop in crops])
