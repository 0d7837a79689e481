"""Shared test helpers: tiny pictures made on the fly, and the optional real data folder."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def gradient_image(size: int = 32, seed: int = 0) -> Image.Image:
    """A small RGB picture with structure (so resizes and crops are visible) and some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 127 // size], axis=-1)
    noise = rng.integers(0, 40, size=base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def write_image_folder(root: Path, count: int, size: int = 32, ext: str = ".png", seed: int = 0) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = root / f"img_{i:03d}{ext}"
        gradient_image(size, seed + i).save(path)
        paths.append(path)
    return paths


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no data: a cheap 'bomb'."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip: integration tests must pass on a machine without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
