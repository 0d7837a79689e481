"""`twingan prepare`: a folder of raw photos or anime pictures -> one square crop per face.

Training wants faces at one size and framing; people have holiday photos and scraped
illustrations. Nothing is dropped silently: pictures without a face and files that cannot be read
are listed in a JSON report. A re-run skips pictures already done: every crop is written
atomically and a picture's first face last, so an existing `<stem>.png` means all its faces are.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import click
from PIL import Image, ImageOps
from tqdm import tqdm

from twingan.atomic import atomic_path, write_text
from twingan.cli.options import MAX_SIZE, writable
from twingan.data.images import IMAGE_EXTENSIONS, BadImage, find_images, load_image
from twingan.errors import UserError
from twingan.infer.faces import FACE_KINDS, crop_face, detect_faces

REPORT_NAME = "prepare_report.json"
PrepareKind = Literal["photo", "anime", "none"]
PREPARE_KINDS: tuple[PrepareKind, ...] = (*FACE_KINDS, "none")
"""What `prepare` looks for: human faces, anime faces, or nothing ("none": the centred square of
every picture, for domains without a detector here, such as cats and dogs)."""
ImageFormat = Literal["png", "jpg"]
_SAVE_FORMAT = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 95})}


@dataclass
class PrepareReport:
    """What a run did with every picture, so that none is lost without a trace."""

    src: str
    out: str
    kind: str
    settings: dict[str, object]
    report: str
    pictures_scanned: int = 0
    pictures_with_face: int = 0
    faces_written: int = 0
    already_done: int = 0
    """Pictures skipped because an earlier run wrote their crops (counted as having a face)."""
    no_face: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        done = f", {_plural(self.already_done, 'picture')} already done" if self.already_done else ""
        return (f"{self.pictures_with_face} of {_plural(self.pictures_scanned, 'picture')} had a face "
                f"({_plural(self.faces_written, 'face')} written{done}); {len(self.no_face)} without "
                f"a face, {len(self.unreadable)} unreadable: see {self.report}")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(frozen=True)
class _Job:
    source: Path
    name: str
    """Output path relative to OUT, without extension: the source's, made unique."""


@dataclass(frozen=True)
class _Settings:
    out: Path
    kind: PrepareKind
    size: int
    scale: float
    min_face: int
    fmt: ImageFormat
    overwrite: bool
    first_names: frozenset[str]


@dataclass(frozen=True)
class _Outcome:
    faces: int = 0
    done_before: bool = False
    unreadable: str | None = None


def prepare_faces(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    kind: PrepareKind,
    size: int = 256,
    scale: float = 1.5,
    min_face: int = 24,
    fmt: ImageFormat = "png",
    overwrite: bool = False,
    report: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Write a size x size crop of every face under `src` to `out`, and a JSON report.

    Threads, not processes: the cascade detector and Pillow release the GIL, and threads share
    the parsed cascades (on 2 cores, 300 selfies took 26.4 s with one thread, 14.4 s with two).
    """
    src, out = Path(src), Path(out)
    report_path = Path(report) if report is not None else out / REPORT_NAME
    _check_options(src, out, kind, size, scale, min_face, fmt, report_path, workers)
    unlisted: list[tuple[str, str]] = []
    sources = _find_sources(src, out, unlisted)
    names = _first_names(src, sources)
    settings = _Settings(out, kind, size, scale, min_face, fmt, overwrite, frozenset(names))
    result = PrepareReport(
        src=str(src), out=str(out), kind=kind, report=str(report_path),
        settings={"size": size, "format": fmt, **({} if kind == "none" else {"scale": scale, "min_face": min_face})},
        unreadable=[{"path": Path(folder).relative_to(src).as_posix(), "reason": reason}
                    for folder, reason in unlisted])
    jobs = [_Job(source, name) for source, name in zip(sources, names)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        outcomes = pool.map(functools.partial(_prepare_one, settings=settings), jobs)
        for job, outcome in tqdm(zip(jobs, outcomes), total=len(jobs), unit="picture",
                                 desc=f"faces in {src}", disable=not progress):
            _record(result, job.source.relative_to(src).as_posix(), outcome)
    text = json.dumps(asdict(result), indent=2, ensure_ascii=False) + "\n"
    # A file name that is not UTF-8 arrives as lone surrogates; as JSON escapes (\udcff) they
    # stay valid JSON that reads back to the same name.
    write_text(report_path, text.encode("utf-8", "backslashreplace").decode("utf-8"))
    return result


def _check_options(src: Path, out: Path, kind: str, size: int, scale: float, min_face: int,
                   fmt: str, report: Path, workers: int | None) -> None:
    if not src.exists():
        raise UserError(f"source folder {src} does not exist")
    if not src.is_dir():
        raise UserError(f"source {src} is not a folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder")
    if out.resolve() == src.resolve():
        raise UserError(f"output folder {out} must differ from the source folder")
    if report.is_dir():
        raise UserError(f"report path {report} is a folder; give a file name")
    if kind not in PREPARE_KINDS:
        raise UserError(f"--kind must be one of {', '.join(PREPARE_KINDS)}, not {kind!r}")
    if fmt not in _SAVE_FORMAT:
        raise UserError(f"--format must be one of {', '.join(_SAVE_FORMAT)}, not {fmt!r}")
    if not 16 <= size <= MAX_SIZE:
        raise UserError(f"--size must be 16 to {MAX_SIZE} pixels, not {size}")
    if not scale > 0:
        raise UserError(f"--scale must be above 0 (1.5 frames the whole head), not {scale}")
    if min_face < 1:
        raise UserError(f"--min-face must be at least 1 pixel, not {min_face}")
    if workers is not None and workers < 1:
        raise UserError(f"--jobs must be at least 1, not {workers}")


def _find_sources(src: Path, out: Path, unlisted: list[tuple[str, str]]) -> list[Path]:
    """The pictures under `src`, leaving out `out` when it lies inside (our own earlier crops);
    folders that cannot be listed go to `unlisted`."""
    out = out.resolve()
    sources = [p for p in find_images(src, unlisted) if not p.resolve().is_relative_to(out)]
    if not sources:
        raise UserError(f"source folder {src} holds no pictures "
                        f"({'/'.join(sorted(IMAGE_EXTENSIONS))}, searched recursively)")
    return sources


def _first_names(src: Path, sources: list[Path]) -> list[str]:
    """Each picture's output name: its path without extension, or with the extension kept when
    two pictures differ only in it (a.jpg, a.png -> a, a_png), so no crop overwrites another."""
    taken: set[str] = set()
    names = []
    for path in sources:
        base = path.relative_to(src).with_suffix("").as_posix()
        ext = path.suffix.lstrip(".")
        candidates = itertools.chain([base, f"{base}_{ext}"], (f"{base}_{ext}_{n}" for n in itertools.count(2)))
        name = next(c for c in candidates if c not in taken)
        taken.add(name)
        names.append(name)
    return names


def _extra_names(name: str, count: int, first_names: frozenset[str]) -> list[str]:
    """Names for a picture's second, third... faces: name_1, name_2... skipping any that is
    another picture's first name (a.jpg with two faces next to a_1.jpg)."""
    candidates = (f"{name}_{n}" for n in itertools.count(1))
    return list(itertools.islice((c for c in candidates if c not in first_names), count))


def _prepare_one(job: _Job, settings: _Settings) -> _Outcome:
    suffix = f".{settings.fmt}"
    first = settings.out / f"{job.name}{suffix}"
    if first.exists() and not settings.overwrite:
        return _Outcome(done_before=True)
    try:
        image = load_image(job.source)
    except BadImage as exc:
        return _Outcome(unreadable=str(exc).removeprefix(f"{job.source}: "))
    if settings.kind == "none":
        _save(ImageOps.fit(image, (settings.size, settings.size), Image.Resampling.LANCZOS), first, settings.fmt)
        return _Outcome(faces=1)
    faces = detect_faces(image, settings.kind, settings.min_face)
    if not faces:
        return _Outcome()
    extra = _extra_names(job.name, len(faces) - 1, settings.first_names)
    targets = [first, *(settings.out / f"{name}{suffix}" for name in extra)]
    for face, target in reversed(list(zip(faces, targets))):
        _save(crop_face(image, face, settings.size, settings.scale), target, settings.fmt)
    return _Outcome(faces=len(faces))


def _save(crop: Image.Image, target: Path, fmt: ImageFormat) -> None:
    pil_format, options = _SAVE_FORMAT[fmt]
    with atomic_path(target) as tmp:
        crop.save(tmp, format=pil_format, **options)


def _record(report: PrepareReport, relative: str, outcome: _Outcome) -> None:
    report.pictures_scanned += 1
    if outcome.unreadable is not None:
        report.unreadable.append({"path": relative, "reason": outcome.unreadable})
    elif outcome.done_before:
        report.already_done += 1
        report.pictures_with_face += 1
    elif outcome.faces:
        report.pictures_with_face += 1
        report.faces_written += outcome.faces
    else:
        report.no_face.append(relative)


@click.command("prepare")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), callback=writable("output", folder=True),
              help="Folder for the crops; SRC's subfolders are mirrored in it.")
@click.option("--kind", required=True, type=click.Choice(PREPARE_KINDS),
              help="photo: human faces (frontal); anime: drawn anime faces; none: no detector, the "
                   "centred square of each picture (cats, dogs: frame them first).")
@click.option("--size", type=click.IntRange(16, MAX_SIZE), default=256, show_default=True,
              help="Side of the square crops in pixels.")
@click.option("--scale", default=1.5, show_default=True,
              help="Crop side as a multiple of the face's side: more shows more hair and background.")
@click.option("--min-face", default=24, show_default=True,
              help="Ignore faces smaller than this many pixels (in big pictures, faces under about "
                   "1/20 of the long side are never found).")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="File format of the crops.")
@click.option("--overwrite", is_flag=True, help="Redo pictures whose crops already exist.")
@click.option("--report", type=click.Path(path_type=Path), callback=writable("report"),
              help=f"Where to write the JSON report  [default: OUT/{REPORT_NAME}]")
@click.option("-j", "--jobs", type=int, help="Pictures worked on at once  [default: CPU cores]")
def prepare_command(src: Path, out: Path, kind: PrepareKind, size: int, scale: float, min_face: int,
                    fmt: ImageFormat, overwrite: bool, report: Path | None, jobs: int | None) -> None:
    """Cut a square crop around every face in the pictures under SRC, into OUT.

    The first face of SRC/x/name.jpg goes to OUT/x/name.png, more faces to name_1.png,
    name_2.png... Pictures without a face and unreadable files are listed in the report.
    Run it again to finish an interrupted run: pictures already done are skipped.
    """
    result = prepare_faces(src, out, kind, size=size, scale=scale, min_face=min_face, fmt=fmt,
                           overwrite=overwrite, report=report, workers=jobs)
    click.echo(result.summary())
    if result.unreadable:  # as `translate`: the rest is done, and a script can see that some failed
        raise click.exceptions.Exit(1)
