"""Face rate: the share of translated pictures in which the target domain's face detector finds a face.

Why a detector: SWD compares patch statistics after normalising each set's own mean and spread, so
it rewards a clean, sharp copy of the photo over a noisy picture with anime eyes, and there are no
Inception weights offline for KID. The anime-face cascade (nagadomi's lbpcascade_animeface, the one
`prepare` and face mode use) keys on what makes a face anime: large eyes, a small nose and mouth,
the chin line; it knows nothing of SWD's patch statistics, so the two judge independently.

On the 300 + 300 held-out 64 px pictures of tools/quality_run.py (docs/quality.md), searched at
their own size: the anime cascade finds a face in 100% of the anime pictures and 39% of the photos;
the photo cascade in 70% of the photos and 10% of the anime pictures. Searching an enlarged copy
(128 px) took five times as long and found more false faces (photo cascade on anime: 25%).
"""

from __future__ import annotations

from PIL import Image
from torch import Tensor

from twingan.infer.faces import FaceKind, detect_faces


def to_pil(picture: Tensor) -> Image.Image:
    """A CHW tensor on [-1, 1] (1 or 3 channels) as an 8-bit picture."""
    pixels = picture.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().byte()
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0].numpy(), mode="L")
    return Image.fromarray(pixels.permute(1, 2, 0).numpy(), mode="RGB")


def face_rate(pictures: Tensor, kind: FaceKind) -> float:
    """Share of an NCHW batch on [-1, 1] in which the `kind` cascade finds at least one face."""
    if len(pictures) == 0:
        raise ValueError("face_rate needs at least one picture")
    found = sum(bool(detect_faces(to_pil(picture), kind)) for picture in pictures)
    return found / len(pictures)
