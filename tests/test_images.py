"""Every kind of file a real photo folder holds either loads correctly or is refused by name."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import encoded, gradient_image, png_header_only
from PIL import Image

from twingan.data.images import BadImage, find_images, load_image


def test_corrupt_jpeg_is_refused(tmp_path):
    good = encoded(gradient_image(64), "JPEG")
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(good[:30] + bytes(range(256)) * 4)
    with pytest.raises(BadImage, match="corrupt.jpg"):
        load_image(path)


def test_truncated_png_is_refused(tmp_path):
    path = tmp_path / "truncated.png"
    path.write_bytes(encoded(gradient_image(64), "PNG")[:400])
    with pytest.raises(BadImage, match="truncated.png: corrupt or truncated"):
        load_image(path)


def test_text_file_named_jpg_is_refused(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    with pytest.raises(BadImage, match="notes.jpg: not a readable image"):
        load_image(path)


def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(BadImage, match="empty.png: empty file"):
        load_image(path)


def test_cmyk_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    image = load_image(path)
    assert image.mode == "RGB"
    red, green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 60 and blue < 60


def test_16_bit_grey_is_rescaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    values = np.array([[0, 32768], [65535, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    pixels = np.asarray(load_image(path))
    assert pixels.shape == (2, 2, 3)
    assert pixels[0, 0, 0] == 0 and pixels[0, 1, 0] == 128 and pixels[1, 1, 0] == 255


def test_palette_transparency_is_white(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    pixels = np.asarray(load_image(path))
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[3, 3]) == (255, 255, 255)


@pytest.mark.parametrize("mode, colour", [("RGBA", (0, 0, 255, 0)), ("LA", (0, 0))])
def test_transparent_pixels_are_composited_on_white(tmp_path, mode, colour):
    path = tmp_path / f"{mode}.png"
    image = Image.new(mode, (4, 4), colour)
    opaque = (0, 0, 255, 255) if mode == "RGBA" else (0, 255)
    image.putpixel((1, 1), opaque)
    image.save(path)
    pixels = np.asarray(load_image(path))
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[1, 1]) == ((0, 0, 255) if mode == "RGBA" else (0, 0, 0))


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "phone.jpg"
    stored = Image.new("RGB", (40, 20), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.size == (20, 40)
    pixels = np.asarray(image)
    assert pixels[:5].mean() > 200 and pixels[-5:].mean() < 50


def test_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(BadImage, match="bomb.png: image is too large"):
        load_image(path)


def test_pixel_limit_is_per_call(tmp_path):
    path = tmp_path / "small.png"
    gradient_image(20).save(path)
    assert load_image(path).size == (20, 20)
    with pytest.raises(BadImage, match="too large"):
        load_image(path, max_pixels=399)


def test_grayscale_loading_gives_one_channel(tmp_path):
    path = tmp_path / "colour.png"
    gradient_image(8).save(path)
    assert load_image(path, grayscale=True).mode == "L"


def test_find_images_is_recursive_and_case_insensitive(tmp_path):
    for name in ["a.JPG", "sub/b.jpeg", "sub/deeper/c.webp", "d.bmp", "e.Png", "notes.txt", ".hidden.png"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert names == ["a.JPG", "d.bmp", "e.Png", "sub/b.jpeg", "sub/deeper/c.webp"]


def test_a_folder_that_cannot_be_listed_is_reported_not_skipped_silently(tmp_path, caplog, monkeypatch):
    for folder, name in (("open", "a.png"), ("shut", "b.png")):
        (tmp_path / folder).mkdir()
        gradient_image(8).save(tmp_path / folder / name)
    listing = os.scandir

    def scandir(path="."):  # what a folder without read permission does (root is never refused)
        if Path(path).name == "shut":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    unlisted: list[tuple[str, str]] = []
    assert [p.name for p in find_images(tmp_path, unlisted)] == ["a.png"]
    assert unlisted == [(str(tmp_path / "shut"), "folder cannot be listed (permission denied)")]
    assert any("shut" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)


FUZZ_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO", "TGA", "PCX", "SGI", "DDS", "QOI",
                "JPEG2000")
"""Formats Pillow can write here, so the fuzz starts from a valid file of each (Pillow reads more)."""


def _mutations(data: bytes, rng: np.random.Generator, count: int):
    """Random damage of the kinds a disk, a download or a hostile user gives: flipped bytes,
    a cut, a splice of random bytes, a header field set to 0 or 0xFF."""
    for _ in range(count):
        damaged = bytearray(data)
        kind = rng.integers(4)
        if kind == 0:
            for where in rng.integers(0, len(damaged), size=rng.integers(1, 8)):
                damaged[where] = int(rng.integers(256))
        elif kind == 1:
            damaged = damaged[:rng.integers(1, len(damaged))]
        elif kind == 2:
            where = int(rng.integers(len(damaged)))
            damaged[where:where] = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        else:
            where = int(rng.integers(min(len(damaged), 64)))
            damaged[where:where + 4] = (b"\x00" if rng.integers(2) else b"\xff") * 4
        yield bytes(damaged)


@pytest.mark.parametrize("fmt", FUZZ_FORMATS)
def test_the_reader_gives_a_picture_or_bad_image_whatever_the_damage(tmp_path, fmt):
    """The reader's contract (second hostile pass, item 8): `BadImage` or a picture, whatever
    Pillow raises inside; 120 damaged files per format, seeded so a failure can be replayed."""
    try:
        data = encoded(gradient_image(32), fmt)
    except (KeyError, OSError) as exc:
        pytest.skip(f"this Pillow cannot write {fmt}: {exc}")
    rng = np.random.default_rng(sum(map(ord, fmt)))
    path = tmp_path / f"damaged.{fmt.lower()}"
    for i, damaged in enumerate(_mutations(data, rng, 120)):
        path.write_bytes(damaged)
        try:
            picture = load_image(path, max_pixels=4_000_000)
        except BadImage:
            continue
        except Exception as exc:  # noqa: BLE001 - what the test is for
            pytest.fail(f"{fmt} mutation {i}: {type(exc).__name__}: {exc}")
        assert picture.mode == "RGB" and picture.width * picture.height <= 4_000_000
