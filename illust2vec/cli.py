"""The `illust2vec` command: convert the published Caffe weights, tag pictures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from twingan.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
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
        raise UserError(f"Caffe model {caffemodel} not found")
    try:
        variant = convert_caffemodel(caffemodel, out)
    except ValueError as exc:
        raise UserError(f"{caffemodel}: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
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
    from twingan.data.images import BadImage, open_image

    tagger = Illust2Vec.load(weights)
    report = {}
    for path in pictures:
        try:
            with open_image(path) as image:
                image.load()
                report[str(path)] = tagger.tags([image], top_k=top_k, threshold=threshold)[0]
        except BadImage as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{path}: corrupt or truncated image data ({exc})") from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for path, categories in report.items():
        click.echo(path)
        for category, pairs in categories.items():
            listed = ", ".join(f"{tag} {p:.3f}" for tag, p in pairs) or "-"
            click.echo(f"  {category:<10} {listed}")
