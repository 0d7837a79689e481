"""The `illust2vec` command: convert the published Caffe weights, tag pictures."""

from __future__ import annotations

import json
from pathlib import Path

import click
from PIL import Image, UnidentifiedImageError

from illust2vec.errors import Illust2VecError

MAX_PIXELS = 50_000_000
"""Pictures over this many pixels are refused from their header, before decoding (a few GB)."""


class _Group(click.Group):
    """Turns Illust2VecError into one line on stderr and exit status 1, instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Illust2VecError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """illust2vec: tags and features of anime pictures."""


@main.command("convert")
@click.argument("caffemodel", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="The .safetensors file to write.")
def convert_command(caffemodel: Path, out: Path) -> None:
    """Convert CAFFEMODEL (illust2vec_tag_ver200 or illust2vec_ver200) to safetensors; Caffe is not needed."""
    from illust2vec.convert import convert_caffemodel

    if not caffemodel.is_file():
        raise Illust2VecError(f"Caffe model {caffemodel} not found")
    try:
        variant = convert_caffemodel(caffemodel, out)
    except ValueError as exc:
        raise Illust2VecError(f"{caffemodel}: {exc}") from None
    except OSError as exc:
        raise Illust2VecError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote the illust2vec {variant} model to {out}")


@main.command("tag")
@click.argument("pictures", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--weights", "-w", type=click.Path(path_type=Path), required=True,
              help="The tag model, converted with `illust2vec convert`.")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="Tags per category.")
@click.option("--threshold", type=click.FloatRange(0, 1), help="Every tag above this instead of the top k.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def tag_command(pictures: tuple[Path, ...], weights: Path, top_k: int, threshold: float | None, as_json: bool) -> None:
    """Print the most likely tags of each picture, per category."""
    from illust2vec.model import Illust2Vec

    tagger = Illust2Vec.load(weights)
    report = {}
    for path in pictures:
        with open_picture(path) as image:
            try:
                image.load()
            except OSError as exc:
                raise Illust2VecError(f"{path}: corrupt or truncated image data ({exc})") from None
            report[str(path)] = tagger.tags([image], top_k=top_k, threshold=threshold)[0]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for path, categories in report.items():
        click.echo(path)
        for category, pairs in categories.items():
            listed = ", ".join(f"{tag} {p:.3f}" for tag, p in pairs) or "-"
            click.echo(f"  {category:<10} {listed}")


def open_picture(path: Path) -> Image.Image:
    """Open a picture lazily (header only), refusing an empty, foreign or too large one with one line."""
    try:
        if path.stat().st_size == 0:
            raise Illust2VecError(f"{path}: empty file (0 bytes)")
        image = Image.open(path)
    except UnidentifiedImageError:
        raise Illust2VecError(f"{path}: not a readable image file") from None
    except Image.DecompressionBombError:
        raise Illust2VecError(f"{path}: image is too large (over {MAX_PIXELS:,} pixels)") from None
    except OSError as exc:
        raise Illust2VecError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise Illust2VecError(f"{path}: image is too large ({width}x{height} is over {MAX_PIXELS:,} pixels)")
    return image
