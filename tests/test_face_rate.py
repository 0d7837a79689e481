"""Face rate: the content judge beside SWD (twingan/evaluation/face_rate.py)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from twingan.data.pictures import to_tensor
from twingan.evaluation.scores import load_set
from twingan.evaluation.face_rate import face_rate, to_pil


def test_to_pil_maps_the_model_range_to_bytes():
    picture = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 2, 2)
    assert to_pil(picture).getpixel((0, 0)) == (0, 128, 255)
    assert to_pil(picture[:1]).mode == "L"


def test_flat_and_noise_pictures_have_no_faces():
    pictures = torch.cat([torch.zeros(2, 3, 64, 64), torch.rand(2, 3, 64, 64) * 2 - 1])
    assert face_rate(pictures, "anime") == 0.0 and face_rate(pictures, "photo") == 0.0


def test_no_pictures_is_an_error():
    with pytest.raises(ValueError):
        face_rate(torch.zeros(0, 3, 64, 64), "anime")


def test_the_anime_detector_tells_anime_from_photos(shared_data):
    """The figures face_rate.py's docstring quotes, on fewer pictures: anime faces are found in
    (nearly) every anime picture, in far fewer photos; the photo detector the other way round."""
    def first(folder: str) -> torch.Tensor:
        skipped: list[str] = []
        pictures = load_set(shared_data / "selfie2anime" / folder, 64, "squash", skipped)
        return pictures[:60]

    photos, anime = first("trainA"), first("trainB")
    assert face_rate(anime, "anime") > 0.9 > 0.6 > face_rate(photos, "anime")
    assert face_rate(photos, "photo") > 0.5 > 0.2 > face_rate(anime, "photo")


def test_a_pasted_anime_face_is_found_where_a_blank_is_not(shared_data):
    anime = sorted((shared_data / "selfie2anime" / "trainB").iterdir())[0]
    tensor = to_tensor(Image.open(anime).convert("RGB").resize((64, 64)))
    pictures = torch.stack([tensor, torch.zeros_like(tensor)])
    assert face_rate(pictures, "anime") == 0.5
