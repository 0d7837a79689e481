"""The HTTP face of `twingan serve`: the page, and the JSON API it is built on (see /openapi.json).

Endpoints are async and never touch the model themselves: decoding and face detection run in
Starlette's thread pool, network calls go through the Batcher's single model thread. Every error
a client can cause is a 4xx whose JSON body has one `detail` sentence.
"""

from __future__ import annotations

import importlib.resources
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from twingan import __version__
from twingan.errors import UserError
from twingan.serve.batcher import Batcher
from twingan.serve.service import FACE_MODE_LONG_SIDE, FACE_MODE_SIDE, MAX_ID, FaceMode, NotInIndex, Plan, Service
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


def create_app(service: Service, limits: Limits = Limits(), max_batch: int | None = None,
               max_wait_s: float = 0.005) -> FastAPI:
    """The ASGI app for one loaded Service; its model thread stops when the app shuts down.

    `max_batch` (requests a model call) defaults to the service's `batch_limit`."""
    batcher = Batcher({"a2b": lambda plans: service.translate_batch(plans, "a2b"),
                       "b2a": lambda plans: service.translate_batch(plans, "b2a"),
                       "neighbours": service.neighbours_batch}, max_batch or service.batch_limit(), max_wait_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title="TwinGAN", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Turn a portrait photo into an anime character (and back), and find the nearest "
                              "faces of both domains. Pictures are sent as multipart/form-data.")
    app.add_middleware(UploadGuard, limits=limits, paths=UPLOAD_ROUTES)
    app.state.service, app.state.batcher = service, batcher
    budget = PixelBudget(limits.decoding_pixels)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.exception_handler(UserError)
    async def user_error(_: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(NotInIndex)
    async def not_found(_: Request, exc: NotInIndex) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def bad_field(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    async def picture(upload: UploadFile, field: str) -> Image.Image:
        check_declared_type(upload, field)
        return await run_in_threadpool(decode_picture, await upload.read(), field, limits, FACE_MODE_LONG_SIDE, budget)

    async def plan_for(photo: UploadFile, direction: str, face: FaceMode) -> Plan:
        return await run_in_threadpool(service.plan, await picture(photo, "photo"), direction, face)

    @app.get("/", include_in_schema=False)
    async def index_page() -> HTMLResponse:
        return HTMLResponse(page)

    @app.post("/api/translate", response_class=Response, responses={
        200: {"content": {"image/png": {}},
              "description": "the translation as a PNG; header X-TwinGAN-Faces says how many faces were "
                             "translated (0: the whole picture)"},
        **ERRORS})
    async def translate(
        photo: UploadFile = File(description="The picture to translate (a photo for a2b)."),
        reference: UploadFile | None = File(None, description="An anime picture whose character the result takes."),
        reference_id: int | None = Form(None, description="A gallery picture to take the character from instead."),
        tags: str | None = Form(None, description='Character tags, e.g. "green hair, blue eyes" (illust2vec models).'),
        direction: Literal["a2b", "b2a"] = Form("a2b", description="a2b: photo -> anime; b2a: anime -> photo."),
        face: FaceMode = Form("auto", description=f"Translate only the faces: on, off, or auto (on for pictures "
                                                  f"whose shorter side is over {FACE_MODE_SIDE} px)."),
    ) -> Response:
        plan = await plan_for(photo, direction, face)
        character = None
        if reference is not None and (reference.filename or reference.size):
            character = await picture(reference, "reference")
        elif reference_id is not None:
            try:
                character = await run_in_threadpool(service.indexed_picture, reference_id)
            except NotInIndex as exc:
                raise HTTPException(422, f"reference_id: {exc}") from None
        tag_list = [t.strip() for t in (tags or "").split(",") if t.strip()]
        service.set_character(plan, character, tag_list, direction)
        output = await app.state.batcher.submit(direction, plan)
        png = await run_in_threadpool(service.compose, plan, output)
        name = f"{safe_stem(photo.filename)}-{'anime' if direction == 'a2b' else 'photo'}.png"
        return Response(png, media_type="image/png", headers={
            "Content-Disposition": f'inline; filename="{name}"', "X-TwinGAN-Faces": str(plan.faces)})

    @app.post("/api/neighbors", response_model=Neighbours, responses=ERRORS)
    async def neighbours(
        photo: UploadFile = File(description="A photo (with face mode as for translate)."),
        k: int = Form(8, ge=1, le=100, description="How many of each domain."),
        face: FaceMode = Form("auto"),
    ) -> Neighbours:
        if service.index is None:
            raise HTTPException(404, "this server has no index: start it with --index to find neighbours")
        plan = await plan_for(photo, "a2b", face)
        found = await app.state.batcher.submit("neighbours", (plan, k))
        return Neighbours(**found, faces=plan.faces)

    @app.get("/api/gallery", response_model=Gallery)
    async def gallery(offset: int = Query(0, ge=0, le=MAX_ID), limit: int = Query(48, ge=1, le=500)) -> Gallery:
        """The index's anime pictures, to pick a reference character from (empty without an index)."""
        total, pictures = await run_in_threadpool(service.gallery, offset, limit)
        return Gallery(total=total, pictures=pictures)

    @app.get("/api/pictures/{picture_id}", response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}, 404: ERRORS[404]})
    async def indexed_picture(picture_id: int) -> Response:
        """A thumbnail of an indexed picture (a gallery entry or a neighbour)."""
        data = await run_in_threadpool(service.thumbnail, picture_id)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/api/health", response_model=Health)
    async def health() -> Health:
        """Whether the server is up, what it serves, and how its batching goes."""
        t = service.translator
        stats = app.state.batcher.stats
        index = None if service.index is None else {"photos": service.index.count("a"),
                                                    "anime": service.index.count("b")}
        return Health(
            status="ok", version=__version__, index=index,
            model={"name": t.model, "resolution": t.resolution, "character": t.character,
                   "device": str(t.device), "checkpoint": t.source.rsplit("/", 1)[-1]},
            batching={"max_batch": app.state.batcher.max_batch, "waiting": app.state.batcher.waiting,
                      "batches": stats.batches, "requests": stats.items,
                      "largest": stats.largest, "busy_s": round(stats.busy_s, 3)},
            limits={"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                    "decoding_pixels": limits.decoding_pixels, "face_mode_side": FACE_MODE_SIDE})

    return app
