"""`twingan translate`: pictures and videos on disk (files, folders, globs) through a Translator to files.

Inputs are gathered and the output checked for writability before any model work, so a typo
fails in a second, not after a folder's worth of translation. Unreadable inputs are reported
and skipped; the rest are translated in batches; every output is written atomically, so an
interrupted run leaves whole pictures only.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import torch
from PIL import Image
from tqdm import tqdm

from twingan import atomic
from twingan.atomic import atomic_path
from twingan.cli.options import CHECKPOINT, SIZE, load_translator, sigterm_as_ctrl_c
from twingan.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, BadImage, find_images, load_image, open_image
from twingan.data.pictures import to_picture, to_unit_range
from twingan.domains import DIRECTIONS, refuse_character_for
from twingan.errors import UserError
from twingan.infer.face_paste import is_scene, translate_faces
from twingan.infer.translator import Translator
from twingan.infer.video import VIDEO_EXTENSIONS, Interrupted, VideoError, find_videos, is_video, translate_video

SAVE_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    videos: int = 0
    no_face: list[Job] = field(default_factory=list)
    """Face mode "auto": pictures in which no face was found (then translated whole)."""

    def summary(self) -> str:
        total = len(self.written) + len(self.failed)
        noun = ("file" if self.videos else "picture") + ("s" if total != 1 else "")
        text = f"translated {len(self.written)} of {total} {noun}"
        if self.no_face:
            text += f"; {len(self.no_face)} without a face found, translated whole: " + \
                ", ".join(str(job.source) for job in self.no_face[:3]) + (", ..." if len(self.no_face) > 3 else "")
        if self.failed:
            shown = "; ".join(self.failed[:5]) + (f"; and {len(self.failed) - 5} more" if len(self.failed) > 5 else "")
            text += f"; {len(self.failed)} skipped: {shown}"
        if self.written:  # where they went, also when -o was left to its default
            text += f"; written to {self.written[0] if len(self.written) == 1 else os.path.commonpath(self.written)}"
        return text


def gather_inputs(items: list[str]) -> list[tuple[Path, Path]]:
    """(picture, output name relative to OUT) for every input: a file, a folder (recursive) or a glob."""
    found: list[tuple[Path, Path]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            media = sorted(find_images(path) + find_videos(path))
            if not media:
                kinds = ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
                raise UserError(f"input folder {path} holds no pictures or videos ({kinds})")
            found += [(p, p.relative_to(path)) for p in media]
        elif path.is_file():
            found.append((path, Path(path.name)))
        elif path.exists():
            raise UserError(f"input {item} is not a regular file or a folder (a pipe or a device cannot be translated)")
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            matches = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS]
            if not matches:
                raise UserError(f"input {item} does not exist (no file, folder or glob match)")
            found += [(m, Path(m.name)) for m in matches]
    return found


def plan_jobs(inputs: list[tuple[Path, Path]], out: Path | None) -> list[Job]:
    """One output per input; OUT is a file only for a single input with a picture or video extension
    (a video's output is a video, a picture's a picture)."""
    if len(inputs) == 1 and out is not None and out.suffix.lower() in set(SAVE_FORMATS) | VIDEO_EXTENSIONS \
            and not out.is_dir():
        source = inputs[0][0]
        if is_video(source) != is_video(out):
            wanted = "a video (" + ", ".join(sorted(VIDEO_EXTENSIONS)) + ")" if is_video(source) else "a picture"
            raise UserError(f"output {out} must be {wanted} for the input {source}")
        return [Job(source, out)]
    folder = out or Path("translated")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output {folder} is a file; give a folder for {len(inputs)} inputs")
    jobs, used = [], set()
    for source, name in inputs:
        kept = name.suffix.lower() in SAVE_FORMATS or is_video(name)
        target = folder / (name if kept else name.with_suffix(".png"))
        stem, n = target.with_suffix(""), 1
        while target in used:
            target, n = Path(f"{stem}-{n}{target.suffix}"), n + 1
        used.add(target)
        jobs.append(Job(source, target))
    return jobs


def refuse_overwriting(jobs: list[Job], keep: list[Path]) -> None:
    """Refuse outputs that would replace one of the user's own pictures (`translate DIR -o DIR`)."""
    protected = {path.resolve(): path for path in keep}
    for job in jobs:
        hit = protected.get(job.target.resolve())
        if hit is not None:
            raise UserError(f"output {job.target} would overwrite the input picture {hit}; choose another -o")


def check_writable(jobs: list[Job]) -> None:
    """Refuse an output place that cannot be written before any work starts."""
    for parent in sorted({job.target.parent for job in jobs}):
        atomic.check_writable(parent, "output folder", folder=True)


def side_by_side(tiles: list[torch.Tensor]) -> torch.Tensor:
    """CHW tensors in [-1, 1] -> one CHW tensor in [0, 1], left to right."""
    return to_unit_range(torch.cat(tiles, dim=-1))


def translate_files(translator: Translator, jobs: list[Job], direction: str = "a2b", size: int | None = None,
                    batch_size: int = 8, grid: bool = False, cycle: bool = False,
                    progress: bool = True, character: torch.Tensor | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> TranslateReport:
    """Translate every job's picture and write it; unreadable pictures are recorded, not fatal."""
    size = translator.resolution if size is None else size
    translator.check_size(size)
    report = TranslateReport()
    bar = tqdm(total=len(jobs), unit="picture", disable=not progress or len(jobs) < 2, desc="translating")
    for start in range(0, len(jobs), batch_size):
        ready, inputs = [], []
        for job in jobs[start:start + batch_size]:
            try:
                inputs.append(translator.prepare(load_image(job.source, max_pixels), size))
                ready.append(job)
            except BadImage as exc:
                report.failed.append(str(exc))
                bar.update(1)
        if not ready:
            continue
        batch = torch.stack(inputs)
        result = translator.run(batch, direction, cycle=cycle, character=character)
        outputs, back = result if cycle else (result, None)
        for i, job in enumerate(ready):
            tiles = ([batch[i]] if grid or cycle else []) + [outputs[i].cpu()] + ([back[i].cpu()] if cycle else [])
            picture = to_picture(side_by_side(tiles))
            _save(picture, job.target)
            report.written.append(job.target)
            bar.update(1)
    bar.close()
    return report


def split_by_face_mode(jobs: list[Job], face: bool | None) -> tuple[list[Job], list[Job]]:
    """(face-mode jobs, whole-picture jobs). `face` None picks per picture by its size (is_scene),
    read from the file's header only; a picture whose header cannot be read goes the whole-picture
    way, which reports it."""
    if face is not None:
        return (jobs, []) if face else ([], jobs)
    faces, whole = [], []
    for job in jobs:
        try:
            with open_image(job.source, max_pixels=sys.maxsize) as header:
                scene = is_scene(header.size)
        except BadImage:
            scene = False
        (faces if scene else whole).append(job)
    return faces, whole


def translate_face_files(translator: Translator, jobs: list[Job], direction: str = "a2b", size: int | None = None,
                         grid: bool = False, progress: bool = True, character: torch.Tensor | None = None,
                         whole_if_no_face: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> TranslateReport:
    """Face mode: one picture at a time (pictures differ in their number of faces and size; each
    picture's faces go through the networks in one batch), full pictures out. A
    picture without a face is a failure, or with `whole_if_no_face` (face mode "auto") left in
    `no_face` for the whole-picture way."""
    size = translator.resolution if size is None else size
    translator.check_size(size)
    report = TranslateReport()
    for job in tqdm(jobs, unit="picture", disable=not progress or len(jobs) < 2, desc="translating faces"):
        try:
            picture = load_image(job.source, max_pixels, grayscale=translator.channels == 1)
        except BadImage as exc:
            report.failed.append(str(exc))
            continue
        result = translate_faces(translator, picture, direction, size, character)
        if result is None:
            if whole_if_no_face:
                report.no_face.append(job)
            else:
                report.failed.append(f"{job.source}: no face found")
            continue
        if grid:
            both = Image.new(picture.mode, (picture.width * 2, picture.height))
            both.paste(picture, (0, 0))
            both.paste(result, (picture.width, 0))
            result = both
        _save(result, job.target)
        report.written.append(job.target)
    return report


def _save(picture: Image.Image, target: Path) -> None:
    fmt = SAVE_FORMATS[target.suffix.lower()]
    with atomic_path(target) as tmp:
        picture.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))


@click.command("translate")
@click.argument("inputs", nargs=-1, required=True)
@CHECKPOINT
@click.option("-o", "--out", type=click.Path(path_type=Path),
              help="Output file (one input) or folder (default: ./translated).")
@click.option("--direction", type=click.Choice(list(DIRECTIONS)), default="a2b", show_default=True,
              help="a2b: domain A (photos) -> B (anime); b2a: back.")
@click.option("--grid", is_flag=True, help="Write input | output side by side.")
@click.option("--cycle", is_flag=True, help="Write input | output | translated back (implies --grid).")
@click.option("--face/--no-face", default=None,
              help="Find the faces, translate each, blend them back into the whole picture. Default for "
                   "pictures: on when the shorter side is over 512 px (a phone photo; one without a face found "
                   "is translated whole), off for smaller ones (face crops, like the training pictures) and "
                   "with --cycle. Videos: only with --face.")
@click.option("--size", type=SIZE, help="Model size (default: the resolution the checkpoint finished training at).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--target-character", "references", multiple=True, type=click.Path(path_type=Path),
              help="An anime picture whose character the output takes (repeat for one output per reference).")
@click.option("--tags", help='Character attributes by name, e.g. "green hair, blue eyes" (illust2vec-trained models).')
@click.option("--illust2vec-weights", type=click.Path(path_type=Path),
              help="The converted illust2vec tag model, if not where the checkpoint's config says.")
@click.option("--stable/--no-stable", default=True, show_default=True,
              help="Videos: blend each frame with the last where the input barely changed (less flicker).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse pictures with more pixels, before decoding (the guard against decompression bombs); "
                   "a 108 MP phone photo needs 110000000 (memory grows with the picture).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@sigterm_as_ctrl_c()
def translate_command(inputs: tuple[str, ...], checkpoint: Path | None, out: Path | None, direction: str,
                      grid: bool, cycle: bool, face: bool | None, size: int | None, device: str, batch_size: int,
                      references: tuple[Path, ...], tags: str | None, illust2vec_weights: Path | None,
                      stable: bool, max_pixels: int, no_progress: bool) -> None:
    """Translate pictures and videos (files, folders searched recursively, or globs) with a trained model
    (without --checkpoint: the bundled one).

    \b
    Examples:
      twingan translate selfie.jpg -o anime.png                   (the bundled model)
      twingan translate selfie.jpg --checkpoint runs/cpu64 -o anime.png
      twingan translate photos/ --checkpoint runs/cpu64 -o anime/ --grid
      twingan translate "shots/*.jpg" --checkpoint runs/cpu64/checkpoints/ckpt-000000027000.pt --cycle
      twingan translate group.jpg --checkpoint runs/cpu64 --face -o group-anime.jpg
      twingan translate clip.mp4 --checkpoint runs/cpu64 --face -o anime.mp4
      twingan translate me.jpg --checkpoint runs/char64 --target-character miku.png --target-character rin.png
    """
    if face and cycle:
        raise UserError("--cycle shows model-sized pictures and --face whole ones: use one of them")
    if references and tags:
        raise UserError("--target-character and --tags both set the character: use one of them")
    if (references or tags) and not cycle:
        refuse_character_for(direction)
    inputs_found = gather_inputs(list(inputs))
    if (grid or cycle) and any(is_video(source) for source, _ in inputs_found):
        raise UserError("--grid and --cycle are for pictures; translate videos without them")
    names = [r.stem if [q.stem for q in references].count(r.stem) == 1 else f"{r.stem}-{i + 1}"
             for i, r in enumerate(references)]
    plans = [(reference, plan_jobs(inputs_found, reference_output(out, name, len(references), len(inputs_found))))
             for reference, name in zip(references, names)] or [(None, plan_jobs(inputs_found, out))]
    for _, jobs in plans:
        refuse_overwriting(jobs, [source for source, _ in inputs_found] + list(references))
        check_writable(jobs)
    reference_pictures = {reference: load_reference(reference) for reference in references}
    translator = load_translator(checkpoint, device, illust2vec_weights)
    face = False if cycle and face is None else face
    fixed = translator.tags_code([t.strip() for t in tags.split(",") if t.strip()]) if tags else None
    report = TranslateReport()
    for reference, jobs in plans:
        character = translator.character_code(reference_pictures[reference]) if reference else fixed
        face_jobs, whole_jobs = split_by_face_mode([job for job in jobs if not is_video(job.source)], face)
        faces = translate_face_files(translator, face_jobs, direction, size, grid, not no_progress, character,
                                     whole_if_no_face=face is None, max_pixels=max_pixels)
        whole = translate_files(translator, whole_jobs + faces.no_face, direction, size, batch_size, grid, cycle,
                                not no_progress, character, max_pixels)
        report.written += faces.written + whole.written
        report.failed += faces.failed + whole.failed
        report.no_face += faces.no_face
        for job in (job for job in jobs if is_video(job.source)):
            report.videos += 1
            try:
                translate_video(translator, job.source, job.target, direction, size, bool(face), stable, batch_size,
                                character, not no_progress)
                report.written.append(job.target)
            except Interrupted:
                raise
            except VideoError as exc:
                report.failed.append(str(exc))
    click.echo(report.summary())
    if report.failed:
        sys.exit(1)


def reference_output(out: Path | None, name: str, references: int, inputs: int) -> Path | None:
    """Where the outputs for the reference called `name` go: OUT itself for a single reference;
    with several, OUT's file name gets the reference's name (one input) or a subfolder per reference."""
    if references == 1:
        return out
    if inputs == 1 and out is not None and out.suffix.lower() in SAVE_FORMATS and not out.is_dir():
        return out.with_name(f"{out.stem}-{name}{out.suffix}")
    return (out or Path("translated")) / name


def load_reference(path: Path) -> Image.Image:
    try:
        return load_image(path)
    except BadImage as exc:
        raise UserError(f"reference character picture {exc}") from None
