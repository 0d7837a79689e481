"""`twingan index build|add` and `twingan neighbors`: the closest faces of both domains to a picture.

The pictures (and queries) are encoded here, by the index's own checkpoint; the index only stores
and searches vectors (twingan/search/index.py). The contact sheet shows the query, then one row per
searched domain with the top k and their distances; the table and --json say the same in text.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw

from twingan.atomic import atomic_path
from twingan.cli.options import CHECKPOINT, load_translator, writable
from twingan.data.images import BadImage, describe_skipped, find_images, load_image
from twingan.domains import DOMAIN_LETTERS
from twingan.errors import UserError
from twingan.search.embedding import Embedder, index_translator
from twingan.search.index import Hit, Index, IndexSettings, describe, writing

THUMB = 96
DOMAIN_LABELS = {"a": "photos", "b": "anime"}


def _pictures(folder: Path | None, option: str) -> list[Path]:
    if folder is None:
        return []
    if not folder.is_dir():
        raise UserError(f"{option} {folder} is not a folder")
    found = find_images(folder)
    if not found:
        raise UserError(f"{option} {folder} holds no pictures")
    return found


def index_embedder(index: Index, checkpoint: str | Path | None = None, device: str = "auto") -> Embedder:
    """The encoder that made the index's vectors (see `index_translator`)."""
    return Embedder(index_translator(index, checkpoint, device))


def _embed_into(index: Index, embedder: Embedder, folders: dict[str, list[Path]], batch_size: int,
                progress: bool) -> list[str]:
    """Embed and add the pictures not yet in the index; returns the failures."""
    failed = []
    for domain, paths in folders.items():
        embedded = embedder.embed_files(paths, domain, batch_size, progress)
        failed += embedded.failed
        keep = [i for i, (p, h) in enumerate(zip(embedded.paths, embedded.hashes))
                if not index.contains(domain, str(p.resolve()), h)]
        if keep:
            index.add(domain, embedded.vectors[keep], [str(embedded.paths[i].resolve()) for i in keep],
                      [embedded.hashes[i] for i in keep])
    return failed


def _report(index: Index, failed: list[str]) -> None:
    click.echo(f"index {index.path}: {describe(index)}")
    if failed:
        shown = "; ".join(failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else "")
        click.echo(f"skipped {len(failed)} unreadable picture(s): {shown}")


@click.group("index")
def index_command() -> None:
    """Build or grow a nearest-face index over the shared latent space (FAISS + SQLite)."""


@index_command.command("build")
@CHECKPOINT
@click.option("--a", "folder_a", type=click.Path(path_type=Path), help="Photos (domain A), searched recursively.")
@click.option("--b", "folder_b", type=click.Path(path_type=Path), help="Anime pictures (domain B).")
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), callback=writable("index", folder=True),
              help="The index folder to write.")
@click.option("--pca", type=click.IntRange(min=1), help="Reduce vectors to this many dimensions (fitted PCA).")
@click.option("--no-normalize", is_flag=True, help="Euclidean distance instead of cosine.")
@click.option("--factory", help="FAISS index factory string, e.g. HNSW32 or IVF1024,Flat "
                                "(default: Flat, exact, up to 50,000 pictures a domain; IVF above).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--no-progress", is_flag=True)
def build_command(checkpoint: Path | None, folder_a: Path | None, folder_b: Path | None, out: Path, pca: int | None,
                  no_normalize: bool, factory: str | None, device: str, batch_size: int, no_progress: bool) -> None:
    """Encode every picture of --a and --b and write a new index to OUT (replacing one there)."""
    folders = {d: p for d, p in (("a", _pictures(folder_a, "--a")), ("b", _pictures(folder_b, "--b"))) if p}
    if not folders:
        raise UserError("give --a and/or --b: the folders of pictures to index")
    embedder = Embedder(load_translator(checkpoint, device))
    embedded = {d: embedder.embed_files(paths, d, batch_size, not no_progress) for d, paths in folders.items()}
    failed = [f for e in embedded.values() for f in e.failed]
    if not any(e.paths for e in embedded.values()):
        raise UserError(f"none of the {len(failed)} pictures could be read, so there is nothing to index: "
                        f"{describe_skipped(failed, limit=2)}")
    settings = IndexSettings(*embedder.translator.identity(), embedder.resolution, embedder.dim, pca,
                             not no_normalize)
    with writing(out, create=True):
        index = Index.create(out, settings, {d: e.vectors for d, e in embedded.items()}, factory)
        for d, e in embedded.items():
            index.add(d, e.vectors, [str(p.resolve()) for p in e.paths], e.hashes)
        index.save()
    _report(index, failed)


@index_command.command("add")
@click.option("--index", "index_path", required=True, type=click.Path(path_type=Path))
@click.option("--a", "folder_a", type=click.Path(path_type=Path), help="More photos (domain A).")
@click.option("--b", "folder_b", type=click.Path(path_type=Path), help="More anime pictures (domain B).")
@click.option("--checkpoint", "-c", type=click.Path(path_type=Path),
              help="The index's checkpoint, if it has moved (it must be the same file; an index built with "
                   "the bundled model needs none).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--no-progress", is_flag=True)
def add_command(index_path: Path, folder_a: Path | None, folder_b: Path | None, checkpoint: Path | None,
                device: str, batch_size: int, no_progress: bool) -> None:
    """Add the pictures of --a/--b that the index does not hold yet (same path and content)."""
    folders = {d: p for d, p in (("a", _pictures(folder_a, "--a")), ("b", _pictures(folder_b, "--b"))) if p}
    if not folders:
        raise UserError("give --a and/or --b: the folders of pictures to add")
    with writing(index_path):
        index = Index.open(index_path)
        embedder = index_embedder(index, checkpoint, device)
        failed = _embed_into(index, embedder, folders, batch_size, not no_progress)
        index.save()
    _report(index, failed)


def contact_sheet(query: Image.Image, hits: list[Hit], domains: tuple[str, ...], k: int) -> Image.Image:
    """Query on the left; one row per domain, nearest first, each with its distance below."""
    label = 16
    sheet = Image.new("RGB", (THUMB * (k + 1) + 8, (THUMB + label) * len(domains)), "white")
    draw = ImageDraw.Draw(sheet)
    sheet.paste(query.convert("RGB").resize((THUMB, THUMB)), (0, 0))
    draw.text((2, THUMB + 2), "query", fill="black")
    for row, domain in enumerate(domains):
        y = row * (THUMB + label)
        for col, hit in enumerate(h for h in hits if h.domain == domain):
            x = THUMB * (col + 1) + 8
            try:
                thumb = load_image(hit.path).resize((THUMB, THUMB))
            except BadImage:
                thumb = Image.new("RGB", (THUMB, THUMB), "grey")
            sheet.paste(thumb, (x, y))
            draw.text((x + 2, y + THUMB + 2), f"{DOMAIN_LABELS[domain]} {hit.distance:.3f}", fill="black")
    return sheet


@click.command("neighbors")
@click.argument("queries", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--index", "index_path", required=True, type=click.Path(path_type=Path))
@click.option("-k", type=click.IntRange(min=1, max=1000), default=8, show_default=True, help="Neighbours per domain.")
@click.option("--domain", type=click.Choice(["a", "b", "both"]), default="both", show_default=True,
              help="Search photos (a), anime pictures (b) or both.")
@click.option("--query-domain", type=click.Choice(list(DOMAIN_LETTERS)), default="a", show_default=True,
              help="Whether the queries are photos (a) or anime pictures (b).")
@click.option("-o", "--out", type=click.Path(path_type=Path), callback=writable("contact sheet"),
              help="Contact sheet (.png/.jpg); with several queries, one per query named OUT-<query>.png.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--checkpoint", "-c", type=click.Path(path_type=Path),
              help="The index's checkpoint, if it has moved (it must be the same file; an index built with "
                   "the bundled model needs none).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def neighbors_command(queries: tuple[Path, ...], index_path: Path, k: int, domain: str, query_domain: str,
                      out: Path | None, as_json: bool, checkpoint: Path | None, device: str) -> None:
    """Find the pictures of the index closest to each QUERY in the shared latent space."""
    if out is not None and out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"contact sheet {out} needs a .png or .jpg name")
    pictures = []
    for query in queries:
        try:
            pictures.append(load_image(query))
        except BadImage as exc:
            raise UserError(f"query {exc}") from None
    index = Index.open(index_path)
    embedder = index_embedder(index, checkpoint, device)
    if embedder.translator.device.type == "cuda":
        index.use_gpu()
    domains = DOMAIN_LETTERS if domain == "both" else (domain,)
    vectors = index.transform(np.concatenate([embedder.embed_picture(p, query_domain) for p in pictures]),
                              query_domain)
    per_domain = {d: index.search_vectors(vectors, k, d) for d in domains}
    results = {str(q): [h for d in domains for h in per_domain[d][i]] for i, q in enumerate(queries)}
    if as_json:
        click.echo(json.dumps({q: [vars(h) for h in hits] for q, hits in results.items()}, indent=2))
    else:
        for query, hits in results.items():
            click.echo(f"{query}  ({'distance: 1 - cosine' if index.settings.normalize else 'Euclidean distance'})")
            click.echo(f"  {'rank':>4}  {'domain':<7} {'distance':>8}  path")
            for hit in hits:
                click.echo(f"  {hit.rank:>4}  {DOMAIN_LABELS[hit.domain]:<7} {hit.distance:>8.4f}  {hit.path}")
    if out is not None:
        for (query, hits), picture in zip(results.items(), pictures):
            target = out if len(queries) == 1 else out.with_name(f"{out.stem}-{Path(query).stem}{out.suffix}")
            with atomic_path(target) as tmp:
                contact_sheet(picture, hits, domains, k).save(tmp, format="JPEG" if target.suffix != ".png" else "PNG")
            if not as_json:
                click.echo(f"contact sheet: {target}")
