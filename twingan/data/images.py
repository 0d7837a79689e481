"""Turning whatever is in a user's folder into RGB (or L) pictures, or a clear reason why not.

Real photo folders hold CMYK JPEGs, 16-bit PNGs, palette images with transparency, phone photos
whose pixels are stored sideways with an EXIF rotation tag, zero-byte leftovers of a failed copy,
and the odd text file named .jpg. Every one of them must either become a correctly oriented
8-bit image or raise `BadImage` with a reason a person understands; nothing else may escape.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from twingan.errors import describe_os_error

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
DEFAULT_MAX_PIXELS = 50_000_000
# open_image checks every header against a per-call limit; Pillow's process-wide guard would
# otherwise refuse anything over ~179 MP even when a user deliberately raises data.max_pixels.
Image.MAX_IMAGE_PIXELS = None


class BadImage(Exception):
    """A file that cannot be used as a picture; the message says which file and why."""


class ImageTooLarge(BadImage):
    """A picture whose header claims more pixels than allowed (refused before decoding)."""


ImageSource = str | os.PathLike[str] | IO[bytes]
"""A path, or an open binary file (an upload held in memory) together with a `name` for messages."""


def _size_in_bytes(source: ImageSource) -> int:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).stat().st_size
    source.seek(0, os.SEEK_END)
    size = source.tell()
    source.seek(0)
    return size


def find_images(root: str | os.PathLike[str], unlisted: list[tuple[str, str]] | None = None) -> list[Path]:
    """Every picture under `root` (recursively, extensions case-insensitive), in a stable order.

    A folder that cannot be listed (no permission) is never skipped silently: it is logged as a
    warning and, when `unlisted` is given, appended to it as (folder, reason) for a report."""
    def refused(exc: OSError) -> None:
        reason = f"folder cannot be listed ({describe_os_error(exc, with_path=False)})"
        log.warning("%s: %s; its pictures are left out", exc.filename, reason)
        if unlisted is not None:
            unlisted.append((str(exc.filename), reason))

    found = [
        Path(folder) / name
        for folder, _, names in os.walk(root, onerror=refused)
        for name in names
        if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith(".")
        and (Path(folder) / name).is_file()
    ]
    return sorted(found)


def open_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Open a picture lazily (header only) and refuse it before decoding if it is too large.

    Pillow's own bomb guard is a process-wide global; checking the header size here keeps the
    limit per call and turns every failure into `BadImage`. Messages start with `name` (default:
    the path).
    """
    label = name or str(source)
    try:
        if _size_in_bytes(source) == 0:
            raise BadImage(f"{label}: empty file (0 bytes)")
        image = Image.open(source)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(f"{label}: not a readable image file") from None
    except OSError as exc:
        raise BadImage(f"{label}: cannot be opened ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - the contract is "BadImage or a picture", whatever Pillow raises
        raise BadImage(f"{label}: not a readable image file ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLarge(f"{label}: image is too large ({width}x{height} is over {max_pixels:,} pixels)")
    return image


def load_image(
    source: ImageSource,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    grayscale: bool = False,
    draft_size: tuple[int, int] | None = None,
    name: str | None = None,
) -> Image.Image:
    """Fully decode a picture: EXIF orientation applied, converted to 8-bit RGB (or L).

    `draft_size` lets JPEG decoding skip straight to a smaller scale (a 4000 px photo needed at
    256 px decodes several times faster); it never goes below the requested size.
    """
    image = open_image(source, max_pixels, name)
    try:
        with image, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.load()
            rgb = to_rgb(ImageOps.exif_transpose(image))
    except BadImage:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many kinds (ValueError for an
        # oversized PNG text chunk, SyntaxError, struct.error, IndexError); every one is a bad file
        raise BadImage(f"{name or source}: corrupt or truncated image data ({exc})") from None
    return rgb.convert("L") if grayscale else rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited on white, 16-bit is rescaled."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return Image.fromarray(_to_uint8(image)).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _to_uint8(image: Image.Image) -> np.ndarray:
    """High-bit-depth grey -> 8 bits: I;16 is 16-bit by definition; I and F are judged by range."""
    array = np.asarray(image).astype(np.float64)
    peak = float(array.max()) if array.size else 0.0
    if image.mode.startswith("I;16") or peak > 255:
        array = array * (255.0 / 65535.0)
    elif image.mode == "F" and peak <= 1.0:
        array = array * 255.0
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def has_text_name(path: Path) -> bool:
    """Whether the path is valid Unicode: a file name of bytes that are not UTF-8 (`bad\\xff.jpg`)
    reaches Python as lone surrogates, which SQLite and UTF-8 files cannot hold."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def describe_skipped(skipped: Iterable[str], limit: int = 5) -> str:
    """A short summary of skipped files for a log line: the first few reasons, then a count."""
    skipped = list(skipped)
    shown = "; ".join(skipped[:limit])
    more = f"; ... and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return shown + more
