"""`twingan eval`: translate two test sets both ways and report the metrics (twingan/evaluation/scores.py)
as a table, and as JSON and Markdown files. `--identity` scores the do-nothing model: the
untranslated pictures against the other domain's.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from twingan.atomic import write_text
from twingan.cli.options import CHECKPOINT, inception_weights, load_translator, writable
from twingan.domains import DIRECTION_NAMES
from twingan.errors import UserError
from twingan.evaluation.metrics import WEIGHTS_ENV, InceptionFeatures
from twingan.evaluation.scores import evaluate, load_set, markdown


@click.command("eval")
@CHECKPOINT
@click.option("--identity", is_flag=True, help="Score the do-nothing model (untranslated pictures) instead.")
@click.option("--a", "folder_a", required=True, type=click.Path(path_type=Path), help="Test photos (domain A).")
@click.option("--b", "folder_b", required=True, type=click.Path(path_type=Path), help="Test anime pictures (domain B).")
@click.option("-o", "--out", type=click.Path(path_type=Path), callback=writable("report"),
              help="Write the report as JSON (and OUT.md).")
@click.option("--size", type=click.IntRange(8, 1024),  # SWD's 7x7 patches need 8 px; 1024 px sets take gigabytes
              help="Picture size for --identity, 8 to 1024 (default 64; a checkpoint uses its own).")
@click.option("--inception-weights", type=click.Path(path_type=Path), envvar=WEIGHTS_ENV,
              callback=inception_weights,
              help="pt_inception-2015-12-05-6726825d.pth, for KID, FID and IS (or $TWINGAN_INCEPTION_WEIGHTS).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--no-progress", is_flag=True)
def eval_command(checkpoint: Path | None, identity: bool, folder_a: Path, folder_b: Path, out: Path | None,
                 size: int | None, inception_weights: Path | None, device: str, batch_size: int,
                 no_progress: bool) -> None:
    """Translate the test sets both ways and report KID, FID, SWD, IS and round-trip PSNR/SSIM
    (of --checkpoint, of the bundled model without it, or of doing nothing with --identity)."""
    if identity and checkpoint is not None:
        raise UserError("give either --checkpoint or --identity")
    translator = None if identity else load_translator(checkpoint, device)
    size = translator.resolution if translator else (size or 64)
    resize = translator.cfg.data.resize if translator else "squash"
    skipped: list[str] = []
    sets = {"a": load_set(folder_a, size, resize, skipped), "b": load_set(folder_b, size, resize, skipped)}
    try:
        inception = InceptionFeatures(inception_weights, translator.device if translator else "cpu")
        missing = None
    except UserError as exc:
        inception, missing = None, str(exc)
        click.echo(f"note: {missing}; KID, FID and IS are left out", err=True)
    results = evaluate(sets, translator, inception, batch_size, not no_progress)
    report = {"checkpoint": translator.source if translator else None, "identity": identity, "size": size,
              "pictures": {d: len(s) for d, s in sets.items()}, "skipped": skipped,
              "inception": missing or "used", "directions": results}
    table = markdown({DIRECTION_NAMES[d]: v for d, v in results.items()})
    click.echo(table)
    if skipped:
        click.echo(f"skipped {len(skipped)} unreadable picture(s): {'; '.join(skipped[:5])}")
    if out is not None:
        write_text(out, json.dumps(report, indent=2))
        write_text(out.with_suffix(".md"), table + "\n")
