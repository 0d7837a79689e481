"""Evaluation as a library: translate two test sets both ways and measure the results.

Per direction (a2b: photos -> anime, b2a: back), the translated set is compared with the real
pictures of the target domain (KID, FID, SWD; IS of the translated set alone), the translations are
searched for faces with the target domain's face detector (face rate, twingan/evaluation/face_rate.py), and each picture
with itself after a round trip (cycle PSNR/SSIM) and after same-domain reconstruction (Twin-GAN:
encode and decode in one domain; CycleGAN: the identity mapping). Without a translator, the
do-nothing model is scored: the untranslated pictures against the other domain's. `twingan eval`,
the training loop's periodic evaluation and tools/proxy_run.py all measure through here.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from twingan.data.images import BadImage, find_images, load_image
from twingan.data.pictures import resize_for_model, to_tensor, to_unit_range
from twingan.domains import DIRECTIONS, DOMAIN_LETTERS
from twingan.errors import UserError
from twingan.evaluation.face_rate import face_rate
from twingan.evaluation.metrics import (InceptionFeatures, colour_distance, detail_ratio, fid, inception_score, kid,
                                        psnr_ssim, swd)
from twingan.infer.faces import FACE_KINDS
from twingan.infer.translator import Translator


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
    stages = 4 + (inception is not None)
    bar = tqdm(total=len(DIRECTIONS) * stages, desc="evaluating", disable=not progress)

    def stage(direction: str, name: str) -> None:
        bar.set_postfix_str(f"{direction}: {name}")
        bar.update(1)

    for direction, (src, dst) in DIRECTIONS.items():
        x, real = sets[DOMAIN_LETTERS[src]], sets[DOMAIN_LETTERS[dst]]
        values: dict[str, float | list[float] | None] = {}
        fake, back, same = (x, None, None) if translator is None else _round_trip(translator, x, direction, batch_size)
        stage(direction, "translated")
        levels = swd(real, fake)
        values["swd"], values["swd_mean"] = levels, sum(levels) / len(levels)
        if real.shape[1] == 3:
            values["colour"] = colour_distance(real, fake)
        values["detail_ratio"] = detail_ratio(real, fake)
        stage(direction, "SWD")
        values["face_rate"] = face_rate(fake, FACE_KINDS[dst])
        stage(direction, "face rate")
        if inception is not None:
            if dst not in features:
                features[dst] = inception(to_unit_range(real))[0]
            pool, logits = inception(to_unit_range(fake))
            values["kid_mean"], values["kid_std"] = kid(features[dst], pool)
            values["fid"] = fid(features[dst], pool)
            values["is_mean"], values["is_std"] = inception_score(logits)
            stage(direction, "Inception")
        for name, pictures in (("cycle", back), ("recon", same)):
            psnr, ssim = psnr_ssim(to_unit_range(pictures), to_unit_range(x)) if pictures is not None else (None, None)
            values[f"{name}_psnr"], values[f"{name}_ssim"] = psnr, ssim
        values["recon_l1"] = None if same is None else float((same - x).abs().mean())
        stage(direction, "PSNR/SSIM")
        results[direction] = values
    bar.close()
    return results


def proxy_scores(results: dict[str, dict]) -> dict[str, float | None]:
    """The numbers variants are ranked by (docs/quality.md): how far each direction's translations
    are from the target domain (SWD mean, lower is better), how often the target domain's face
    detector finds a face in them (face rate, higher is better: SWD alone prefers a clean copy of
    the photo to a noisy anime face), and how well a picture survives its own domain's round trip
    (reconstruction L1 on [-1, 1], lower is better). The first two are what a user sees; the last
    guards against a model that forgets its input. SWD cannot see a colour cast or softness; the
    Lab colour distance (lower is better) can."""
    return {"swd_a2b": results["a2b"]["swd_mean"], "swd_b2a": results["b2a"]["swd_mean"],
            "colour_a2b": results["a2b"].get("colour"), "colour_b2a": results["b2a"].get("colour"),
            "face_a2b": results["a2b"]["face_rate"], "face_b2a": results["b2a"]["face_rate"],
            "recon_l1": results["a2b"]["recon_l1"]}


COLUMNS = [("KID x100", "kid_mean", 100), ("FID", "fid", 1), ("SWD x1e3 (mean)", "swd_mean", 1000),
           ("colour (Lab W1)", "colour", 1), ("detail ratio", "detail_ratio", 1),
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
