"""`twingan eval`: translate two test sets both ways and measure the results.

Per direction (a2b: photos -> anime, b2a: back), the translated set is compared with the real
pictures of the target domain (KID, FID, SWD; IS of the translated set alone), the translations are
searched for faces with the target domain's face detector (face rate, twingan/face_rate.py), and each picture
with itself after a round trip (cycle PSNR/SSIM) and after same-domain reconstruction (Twin-GAN:
encode and decode in one domain; CycleGAN: the identity mapping). `--identity` scores the
do-nothing model: the untranslated pictures against the other domain's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import torch
from torch import Tensor
from tqdm import tqdm

from twingan.atomic import write_text
from twingan.data.images import BadImage, find_images, load_image
from twingan.errors import UserError
from twingan.face_rate import face_rate
from twingan.faces import FACE_KINDS
from twingan.metrics import WEIGHTS_ENV, InceptionFeatures, fid, inception_score, kid, psnr_ssim, swd
from twingan.options import inception_weights, writable
from twingan.translator import DIRECTIONS, Translator, resize_for_model, to_tensor

DIRECTION_NAMES = {"a2b": "photo -> anime", "b2a": "anime -> photo"}


def load_set(folder: Path, size: int, resize: str, skipped: list[str]) -> Tensor:
    """Every picture under `folder` as NCHW in [-1, 1] at `size`; unreadable ones go to `skipped`."""
    if not folder.is_dir():
        raise UserError(f"test folder {folder} does not exist")
    pictures = []
    for path in find_images(folder):
        try:
            pictures.append(to_tensor(resize_for_model(load_image(path), size, resize)))
        except BadImage as exc:
            skipped.append(str(exc))
    if len(pictures) < 2:
        raise UserError(f"test folder {folder} holds {len(pictures)} readable picture(s); the metrics need at least 2")
    return torch.stack(pictures)


def _round_trip(translator: Translator, x: Tensor, direction: str, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """The translations, their way back, and the same-domain reconstructions of `x`, batched."""
    parts: list[list[Tensor]] = [[], [], []]
    src = DIRECTIONS[direction][0]
    for i in range(0, len(x), batch_size):
        out, back = translator.run(x[i:i + batch_size], direction, cycle=True)
        for bucket, part in zip(parts, (out, back, translator.reconstruct(x[i:i + batch_size], src))):
            bucket.append(part.cpu())
    return tuple(torch.cat(bucket) for bucket in parts)


def evaluate(sets: dict[str, Tensor], translator: Translator | None, inception: InceptionFeatures | None,
             batch_size: int = 32, progress: bool = True) -> dict[str, dict]:
    """Metrics per direction; Inception metrics are None without `inception`."""
    features = {}
    results = {}
    steps = tqdm(DIRECTIONS.items(), desc="evaluating", disable=not progress)
    for direction, (src, dst) in steps:
        x, real = sets["ab"[src]], sets["ab"[dst]]
        values: dict[str, float | list[float] | None] = {}
        fake, back, same = (x, None, None) if translator is None else _round_trip(translator, x, direction, batch_size)
        levels = swd(real, fake)
        values["swd"], values["swd_mean"] = levels, sum(levels) / len(levels)
        values["face_rate"] = face_rate(fake, FACE_KINDS[dst])
        if inception is not None:
            if dst not in features:
                features[dst] = inception(real.add(1).div(2))[0]
            pool, logits = inception(fake.add(1).div(2))
            values["kid_mean"], values["kid_std"] = kid(features[dst], pool)
            values["fid"] = fid(features[dst], pool)
            values["is_mean"], values["is_std"] = inception_score(logits)
        for name, pictures in (("cycle", back), ("recon", same)):
            psnr, ssim = psnr_ssim(pictures.add(1).div(2), x.add(1).div(2)) if pictures is not None else (None, None)
            values[f"{name}_psnr"], values[f"{name}_ssim"] = psnr, ssim
        values["recon_l1"] = None if same is None else float((same - x).abs().mean())
        results[direction] = values
    return results


def proxy_scores(results: dict[str, dict]) -> dict[str, float | None]:
    """The numbers variants are ranked by (docs/quality.md): how far each direction's translations
    are from the target domain (SWD mean, lower is better), how often the target domain's face
    detector finds a face in them (face rate, higher is better: SWD alone prefers a clean copy of
    the photo to a noisy anime face), and how well a picture survives its own domain's round trip
    (reconstruction L1 on [-1, 1], lower is better). The first two are what a user sees; the last
    guards against a model that forgets its input."""
    return {"swd_a2b": results["a2b"]["swd_mean"], "swd_b2a": results["b2a"]["swd_mean"],
            "face_a2b": results["a2b"]["face_rate"], "face_b2a": results["b2a"]["face_rate"],
            "recon_l1": results["a2b"]["recon_l1"]}


COLUMNS = [("KID x100", "kid_mean", 100), ("FID", "fid", 1), ("SWD x1e3 (mean)", "swd_mean", 1000),
           ("face rate %", "face_rate", 100), ("IS", "is_mean", 1), ("cycle PSNR", "cycle_psnr", 1),
           ("cycle SSIM", "cycle_ssim", 1), ("recon PSNR", "recon_psnr", 1), ("recon SSIM", "recon_ssim", 1)]


def markdown(rows: dict[str, dict], first: str = "direction") -> str:
    """A table with one row per label (a direction, or a model) and the metrics as columns."""
    lines = [f"| {first} | " + " | ".join(c for c, _, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for label, values in rows.items():
        cells = ["-" if values.get(k) is None or not math.isfinite(values[k]) else f"{values[k] * s:.4g}"
                 for _, k, s in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@click.command("eval")
@click.option("--checkpoint", "-c", type=click.Path(path_type=Path), help="A checkpoint file or run folder.")
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
    """Translate the test sets both ways and report KID, FID, SWD, IS and round-trip PSNR/SSIM."""
    if identity == (checkpoint is not None):
        raise UserError("give either --checkpoint or --identity")
    translator = None if identity else Translator.from_checkpoint(checkpoint, device)
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
    report = {"checkpoint": str(checkpoint) if checkpoint else None, "identity": identity, "size": size,
              "pictures": {d: len(s) for d, s in sets.items()}, "skipped": skipped,
              "inception": missing or "used", "directions": results}
    table = markdown({DIRECTION_NAMES[d]: v for d, v in results.items()})
    click.echo(table)
    if skipped:
        click.echo(f"skipped {len(skipped)} unreadable picture(s): {'; '.join(skipped[:5])}")
    if out is not None:
        write_text(out, json.dumps(report, indent=2))
        write_text(out.with_suffix(".md"), table + "\n")
