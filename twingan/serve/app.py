"""The HTTP face of `twingan serve`: the page, and the JSON API it is built on (see /openapi.json).

Endpoints are async and never touch the model themselves: decoding and face detection run in
Starlette's thread pool, network calls go through the Batcher's single model thread. Every error
a client can cause is a 4xx whose JSON body has one `detail` sentence. The routes are plain
module-level functions; what they share (the Service, the Batcher, the upload limits) lives on
`app.state` and reaches them as dependencies, so one module serves any number of apps (tests).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from illust2vec.errors import Illust2VecError
from twingan import __version__
from twingan.errors import UserError
from twingan.infer.face_paste import FACE_MODE_SIDE
from twingan.serve.batcher import Batcher
from twingan.serve.service import FACE_MODE_LONG_SIDE, MAX_ID, FaceMode, NotInIndex, Plan, Service
from twingan.serve.uploads import Limits, PixelBudget, UploadGuard, check_declared_type, decode_picture, safe_stem

UPLOAD_ROUTES = ("/api/translate", "/api/neighbors")
STATIC = importlib.resources.files("twingan.serve") / "static"
ERRORS = {status: {"description": text, "content": {"application/json": {"example": {"detail": "..."}}}}
          for status, text in ((404, "no index loaded, or no such picture"),
                               (413, "upload or picture too large"), (415, "not multipart, or not a picture"),
                               (422, "unreadable picture, bad field, or a request this model cannot do"))}


class Neighbour(BaseModel):
    rank: int
    distance: float
    id: int
    name: str
    url: str


class Neighbours(BaseModel):
    anime: list[Neighbour]
    photos: list[Neighbour]
    faces: int


class GalleryPicture(BaseModel):
    id: int
    name: str
    url: str


class Gallery(BaseModel):
    total: int
    pictures: list[GalleryPicture]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    model: dict
    index: dict | None
    batching: dict
    limits: dict


class Uploads:
    """Uploaded pictures decoded under the server's limits; one pixel budget for all requests at once."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = PixelBudget(limits.decoding_pixels)

    async def picture(self, upload: UploadFile, field: str) -> Image.Image:
        """Decoded in the thread pool, refused with a 4xx naming `field` if it is not a picture we take."""
        check_declared_type(upload, field)
        return await run_in_threadpool(decode_picture, await upload.read(), field, self.limits, FACE_MODE_LONG_SIDE,
                                       self.budget)


def _service(request: Request) -> Service:
    return request.app.state.service


def _batcher(request: Request) -> Batcher:
    return request.app.state.batcher


def _uploads(request: Request) -> Uploads:
    return request.app.state.uploads


ServiceDep = Annotated[Service, Depends(_service)]
BatcherDep = Annotated[Batcher, Depends(_batcher)]
UploadsDep = Annotated[Uploads, Depends(_uploads)]
router = APIRouter()


def create_app(service: Service, limits: Limits = Limits(), max_batch: int | None = None,
               max_wait_s: float = 0.005) -> FastAPI:
    """The ASGI app for one loaded Service; its model thread stops when the app shuts down.

    `max_batch` (requests a model call) defaults to the service's `batch_limit`."""
    app = FastAPI(title="TwinGAN", version=__version__, lifespan=_lifespan, docs_url=None, redoc_url=None,
                  description="Turn a portrait photo into an anime character (and back), and find the nearest "
                              "faces of both domains. Pictures are sent as multipart/form-data.")
    app.add_middleware(UploadGuard, limits=limits, paths=UPLOAD_ROUTES)
    app.state.service, app.state.uploads = service, Uploads(limits)
    app.state.batcher = Batcher({"a2b": lambda plans: service.translate_batch(plans, "a2b"),
                                 "b2a": lambda plans: service.translate_batch(plans, "b2a"),
                                 "neighbours": service.neighbours_batch},
                                max_batch or service.batch_limit(), max_wait_s)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for error, handler in ((UserError, _user_error), (Illust2VecError, _user_error), (NotInIndex, _not_found),
                           (RequestValidationError, _bad_field)):
        app.add_exception_handler(error, handler)
    app.include_router(router)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.batcher.close()


# ----------------------------------------------------------------- errors
async def _user_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _bad_field(_: Request, exc: RequestValidationError) -> JSONResponse:
    parts = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(parts)}, status_code=422)


# ----------------------------------------------------------------- helpers of the routes
async def _plan(service: Service, uploads: Uploads, photo: UploadFile, direction: str, face: FaceMode) -> Plan:
    return await run_in_threadpool(service.plan, await uploads.picture(photo, "photo"), direction, face)


async def _reference(service: Service, uploads: Uploads, reference: UploadFile | None,
                     reference_id: int | None) -> Image.Image | None:
    """The character picture: an upload, else a gallery picture (an unknown id is a bad field here, 422)."""
    if reference is not None and (reference.filename or reference.size):
        return await uploads.picture(reference, "reference")
    if reference_id is None:
        return None
    try:
        return await run_in_threadpool(service.indexed_picture, reference_id, "b")
    except NotInIndex as exc:
        raise HTTPException(422, f"reference_id: {exc}") from None


@functools.cache
def _page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


# ----------------------------------------------------------------- routes
@router.get("/", include_in_schema=False)
async def index_page() -> HTMLResponse:
    return HTMLResponse(_page())


@router.post("/api/translate", response_class=Response, responses={
    200: {"content": {"image/png": {}},
          "description": "the translation as a PNG; header X-TwinGAN-Faces says how many faces were "
                         "translated (0: the whole picture)"},
    **ERRORS})
async def translate(
    service: ServiceDep, batcher: BatcherDep, uploads: UploadsDep,
    photo: UploadFile = File(description="The picture to translate (a photo for a2b)."),
    reference: UploadFile | None = File(None, description="An anime picture whose character the result takes."),
    reference_id: int | None = Form(None, description="A gallery picture to take the character from instead."),
    tags: str | None = Form(None, description='Character tags, e.g. "green hair, blue eyes" (illust2vec models).'),
    direction: Literal["a2b", "b2a"] = Form("a2b", description="a2b: photo -> anime; b2a: anime -> photo."),
    face: FaceMode = Form("auto", description=f"Translate only the faces: on, off, or auto (on for pictures "
                                              f"whose shorter side is over {FACE_MODE_SIDE} px)."),
) -> Response:
    plan = await _plan(service, uploads, photo, direction, face)
    character = await _reference(service, uploads, reference, reference_id)
    tag_list = [t.strip() for t in (tags or "").split(",") if t.strip()]
    service.set_character(plan, character, tag_list, direction)
    output = await batcher.submit(direction, plan)
    png = await run_in_threadpool(service.compose, plan, output)
    name = f"{safe_stem(photo.filename)}-{'anime' if direction == 'a2b' else 'photo'}.png"
    return Response(png, media_type="image/png", headers={
        "Content-Disposition": f'inline; filename="{name}"', "X-TwinGAN-Faces": str(plan.faces)})


@router.post("/api/neighbors", response_model=Neighbours, responses=ERRORS)
async def neighbours(
    service: ServiceDep, batcher: BatcherDep, uploads: UploadsDep,
    photo: UploadFile = File(description="A photo (with face mode as for translate)."),
    k: int = Form(8, ge=1, le=100, description="How many of each domain."),
    face: FaceMode = Form("auto"),
) -> Neighbours:
    if service.index is None:
        raise HTTPException(404, "this server has no index: start it with --index to find neighbours")
    plan = await _plan(service, uploads, photo, "a2b", face)
    found = await batcher.submit("neighbours", (plan, k))
    return Neighbours(**found, faces=plan.faces)


@router.get("/api/gallery", response_model=Gallery)
async def gallery(service: ServiceDep, offset: int = Query(0, ge=0, le=MAX_ID),
                  limit: int = Query(48, ge=1, le=500)) -> Gallery:
    """The index's anime pictures, to pick a reference character from (empty without an index)."""
    total, pictures = await run_in_threadpool(service.gallery, offset, limit)
    return Gallery(total=total, pictures=pictures)


@router.get("/api/pictures/{picture_id}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, 404: ERRORS[404]})
async def indexed_picture(service: ServiceDep, picture_id: int) -> Response:
    """A thumbnail of an indexed picture (a gallery entry or a neighbour)."""
    data = await run_in_threadpool(service.thumbnail, picture_id)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/api/health", response_model=Health)
async def health(service: ServiceDep, batcher: BatcherDep, uploads: UploadsDep) -> Health:
    """Whether the server is up, what it serves, and how its batching goes."""
    t, stats, limits = service.translator, batcher.stats, uploads.limits
    index = None if service.index is None else {"photos": service.index.count("a"), "anime": service.index.count("b")}
    return Health(
        status="ok", version=__version__, index=index,
        model={"name": t.model, "resolution": t.resolution, "character": t.character,
               "device": str(t.device), "checkpoint": t.source.rsplit("/", 1)[-1]},
        batching={"max_batch": batcher.max_batch, "waiting": batcher.waiting,
                  "batches": stats.batches, "requests": stats.items,
                  "largest": stats.largest, "busy_s": round(stats.busy_s, 3)},
        limits={"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                "decoding_pixels": limits.decoding_pixels, "face_mode_side": FACE_MODE_SIDE})
