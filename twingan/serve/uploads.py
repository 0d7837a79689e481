"""Everything between an HTTP body and a decoded picture, with a 4xx for each way it can go wrong.

The body of an upload request is read into memory up to `Limits.max_upload_bytes` before the
multipart parser sees it: a client that claims or sends more gets 413 at once, and the parser
never spools an oversized upload to disk. Pictures are then opened header-first, so a
decompression bomb (a small file claiming a huge size) is refused before any pixel is decoded.
Pictures within the limit are decoded under a `PixelBudget`: the pixels being decoded at once
(declared sizes) stay under twice the largest picture allowed, and each picture is reduced to the
size the server works at before its budget is returned, so five 120 KB PNGs declaring 6000x6000
no longer hold gigabytes at once. Client file names are never used as paths: only a cleaned stem
goes into the download name.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from fastapi import HTTPException, UploadFile
from PIL import Image
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twingan.data.images import BadImage, ImageTooLarge, load_image, open_image

ACCEPTED_TYPES = ("image/", "application/octet-stream")
"""Declared part types taken as pictures (curl sends application/octet-stream for unknown ones)."""


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    body_seconds: float = 60.0
    """Longest an upload may take, all of its body: a client that stalls (slowloris) is answered
    408 and let go, instead of holding the connection and a shutdown forever. 20 MB in 60 s is
    2.7 Mbit/s."""

    @property
    def decoding_pixels(self) -> int:
        """Pixels decoded at once, all requests together: two pictures of the largest size allowed."""
        return 2 * self.max_pixels


class PixelBudget:
    """A counting semaphore in pixels: a decode waits until its picture fits beside the others."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._free = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.limit)  # a picture over the whole budget runs alone
        with self._free:
            self._free.wait_for(lambda: self.used + pixels <= self.limit)
            self.used += pixels
        try:
            yield
        finally:
            with self._free:
                self.used -= pixels
                self._free.notify_all()


class UploadGuard:
    """ASGI middleware for the upload routes: multipart only (415), body within the limit (413)."""

    def __init__(self, app: ASGIApp, limits: Limits, paths: Collection[str]) -> None:
        self.app, self.limits, self.paths = app, limits, frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        kind = headers.get("content-type", "")
        if not kind.lower().startswith("multipart/form-data"):
            await _refuse(415, f"send pictures as multipart/form-data (this request's content type is "
                               f"{kind or 'missing'})", scope, receive, send)
            return
        declared = headers.get("content-length")
        limit = self.limits.max_upload_bytes
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(413 if declared.isdigit() else 400,
                          _too_big(limit) if declared.isdigit() else f"bad Content-Length {declared!r}",
                          scope, receive, send)
            return
        body = bytearray()
        more = True
        deadline = asyncio.get_running_loop().time() + self.limits.body_seconds
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                await _refuse(408, f"the upload took over {self.limits.body_seconds:.0f} s", scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _refuse(413, _too_big(limit), scope, receive, send)
                return
            more = message.get("more_body", False)
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that gives the buffered body once, then defers to the real one (disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}
    return replay


def _too_big(limit: int) -> str:
    return f"upload too large: the limit is {limit / 2**20:g} MiB for the whole request"


async def _refuse(status: int, detail: str, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})(scope, receive, send)


def check_declared_type(upload: UploadFile, field: str) -> None:
    """Refuse a part whose declared type says it is not a picture (the bytes are checked later)."""
    kind = (upload.content_type or "").split(";")[0].strip().lower()
    if kind and not kind.startswith(ACCEPTED_TYPES):
        raise HTTPException(415, f"{field}: {kind} is not a picture; send a JPEG, PNG, WebP or BMP file")


def decode_picture(data: bytes, field: str, limits: Limits, side: int, budget: PixelBudget) -> Image.Image:
    """Uploaded bytes -> an RGB picture (EXIF rotation applied), or a 413/422 naming the field.

    It is decoded within `budget` and comes out with its shorter side at most `side` (JPEG's draft
    mode skips the finer scales; other formats are reduced right after decoding), which keeps
    which face mode "auto" picks: the shorter side stays over FACE_MODE_SIDE when it was."""
    try:
        with open_image(io.BytesIO(data), limits.max_pixels, name=field) as header:
            pixels = header.width * header.height
        with budget.hold(pixels):
            picture = load_image(io.BytesIO(data), limits.max_pixels, draft_size=(side, side), name=field)
            if min(picture.size) > side:
                scale = side / min(picture.size)
                picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                         Image.Resampling.LANCZOS)
            return picture
    except ImageTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except BadImage as exc:
        raise HTTPException(422, f"{exc}; send a JPEG, PNG, WebP or BMP picture") from None


def safe_stem(filename: str | None) -> str:
    """A client's file name reduced to a harmless stem for download names ("../../x.png" -> "x")."""
    stem = PurePosixPath((filename or "").replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:60]
    return stem or "picture"
