"""Side-by-side quality: Twin-GAN and the CycleGAN baseline, same data, same wall-clock budget.

1. Split ../shared/data/selfie2anime: 300 pictures per domain (a fixed random choice, seed 0)
   are held out as test sets; the rest train. The split is made of symbolic links in WORK/data.
2. Train `twingan_cpu_64` and `cyclegan_cpu_64` with `twingan train`, each stopped after
   --minutes (a run folder that already holds a checkpoint is reused unless --retrain). Both
   evaluate themselves about a dozen times on the way (`train.eval_every`, on 100 + 100 pictures
   held out of their training folders), for the curve.
3. Evaluate both with `twingan eval` on the held-out sets, plus a do-nothing row: the
   untranslated test pictures compared with the other domain's.
4. Print one table per direction and write it into README.md between the quality markers.
5. Draw docs/quality_curve.png (held-out SWD against training minutes, both models) and
   docs/quality_side_by_side.png (the same 8 held-out photos translated by both models).

    python tools/quality_run.py --minutes 25                    # about 55 minutes on 2 CPU cores
    python tools/quality_run.py --stage eval                    # evaluate runs trained earlier
    python tools/quality_run.py --inception-weights pt_inception-2015-12-05-6726825d.pth
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twingan.infer.translator import Translator

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"twingan": "twingan_cpu_64", "cyclegan": "cyclegan_cpu_64"}
EVAL_EVERY = {"twingan": 2000, "cyclegan": 500}
"""Images between the evaluations of the curve: about a dozen each in 25 minutes (Twin-GAN sees
about four times as many images as CycleGAN's batch-1 steps in the same time)."""
HELD_OUT = 300
GRID_PHOTOS = 8


def split(source: Path, work: Path) -> dict[str, Path]:
    """WORK/data/{train,test}_{a,b}: links to the pictures of each part."""
    return link_split({"a": (source / "trainA", HELD_OUT), "b": (source / "trainB", HELD_OUT)}, work)


def link_split(domains: dict[str, tuple[Path, int]], work: Path) -> dict[str, Path]:
    """WORK/data/{train,test}_DOMAIN: symbolic links to each domain folder's pictures, the given
    number held out as the test part (a fixed random choice, seed 0)."""
    folders = {}
    for domain, (source, held_out) in domains.items():
        pictures = sorted(source.iterdir())
        test = set(random.Random(0).sample(range(len(pictures)), held_out))
        for part in ("train", "test"):
            folder = work / "data" / f"{part}_{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, picture in enumerate(pictures):
                link = folder / picture.name
                if (part == "test") == (i in test) and not link.exists():
                    link.symlink_to(picture.resolve())
            folders[f"{part}_{domain}"] = folder
    return folders


def train(work: Path, data: dict[str, Path], minutes: float, retrain: bool) -> dict[str, Path]:
    runs = {}
    for model, preset in MODELS.items():
        run = work / "runs" / model
        runs[model] = run
        if not retrain and any((run / "checkpoints").glob("ckpt-*.pt")):
            print(f"reusing {run}")
            continue
        command = ["twingan", "train", preset, "--a", str(data["train_a"]), "--b", str(data["train_b"]),
                   "--run-dir", str(run), "--no-progress", f"train.max_minutes={minutes}",
                   f"train.eval_every={EVAL_EVERY[model]}"]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
    return runs


def evaluate(work: Path, data: dict[str, Path], runs: dict[str, Path], inception: str | None) -> dict[str, dict]:
    reports = {}
    weights = ["--inception-weights", inception] if inception else []
    for name, source in [*((m, ["--checkpoint", str(r)]) for m, r in runs.items()), ("do nothing", ["--identity"])]:
        out = work / f"eval-{name.replace(' ', '-')}.json"
        command = ["twingan", "eval", *source, "--a", str(data["test_a"]), "--b", str(data["test_b"]),
                   "-o", str(out), "--no-progress", *weights]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
        reports[name] = json.loads(out.read_text())
    return reports


def table(reports: dict[str, dict], held_out: str = f"{HELD_OUT} + {HELD_OUT}") -> str:
    from twingan.domains import DIRECTION_NAMES
    from twingan.evaluation.scores import markdown

    parts = []
    for direction, title in DIRECTION_NAMES.items():
        rows = {name: report["directions"][direction] for name, report in reports.items()}
        parts += [f"**{title}** (held-out: {held_out} pictures)", "", markdown(rows, "model"), ""]
    return "\n".join(parts)


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text()
    begin, end = "<!-- quality:begin -->", "<!-- quality:end -->"
    if begin not in content:
        raise SystemExit("README.md has no <!-- quality:begin --> marker")
    head, rest = content.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")


def plot_curves(runs: dict[str, Path], out: Path) -> None:
    """Held-out SWD (both directions) against training minutes, from each run's eval.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for (direction, title), ax in zip({"a2b": "photo -> anime", "b2a": "anime -> photo"}.items(), axes):
        for colour, (model, run) in enumerate(runs.items()):
            lines = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
            final = max(line["resolution"] for line in lines)
            for at_final, style in ((False, ":"), (True, "-")):
                points = [(line["minutes"], line[direction]["swd_mean"] * 1e3) for line in lines
                          if (line["resolution"] == final) == at_final]
                if points:
                    label = model if at_final else f"{model} (below {final} px)"
                    ax.plot(*zip(*points), style, color=f"C{colour}", marker="o", markersize=3, label=label)
        ax.set_title(f"{title}: held-out SWD x1e3 (lower is better)")
        ax.set_xlabel("training minutes (2 CPU cores)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def side_by_side(runs: dict[str, Path], photos: list[Path], out: Path, direction: str = "a2b") -> None:
    """Rows: the pictures, then each run's translation of them (`direction`); shown 2x enlarged."""
    from twingan.infer.translator import Translator

    translation_grid([Translator.pretrained(str(run).removeprefix("bundled:"), "cpu") if str(run).startswith("bundled:")
                      else Translator.from_checkpoint(run, "cpu") for run in runs.values()], photos, out, direction)


def translation_grid(translators: list[Translator], photos: list[Path], out: Path, direction: str = "a2b") -> None:
    """Rows: the pictures, then each Translator's translation of them; shown 2x enlarged."""
    from PIL import Image
    from torchvision.transforms.functional import to_tensor
    from torchvision.utils import make_grid, save_image

    size = 2 * max(t.resolution for t in translators)
    pictures = [Image.open(p).convert("RGB") for p in photos]
    rows = [[p.resize((size, size), Image.Resampling.BILINEAR) for p in pictures]]
    for translator in translators:
        rows.append([translator.translate(p, direction).resize((size, size), Image.Resampling.NEAREST)
                     for p in pictures])
    tiles = [to_tensor(tile) for row in rows for tile in row]
    save_image(make_grid(tiles, nrow=len(pictures), padding=2, pad_value=1.0), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "selfie2anime")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "quality")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--stage", choices=["all", "train", "eval"], default="all")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--inception-weights")
    args = parser.parse_args()
    data = split(args.data, args.work)
    runs = ({m: args.work / "runs" / m for m in MODELS} if args.stage == "eval"
            else train(args.work, data, args.minutes, args.retrain))
    if args.stage == "train":
        return
    text = table(evaluate(args.work, data, runs, args.inception_weights))
    print(text)
    write_readme(text)
    plot_curves(runs, ROOT / "docs" / "quality_curve.png")
    side_by_side(runs, sorted(data["test_a"].iterdir())[:GRID_PHOTOS], ROOT / "docs" / "quality_side_by_side.png")
    print("wrote docs/quality_curve.png and docs/quality_side_by_side.png")


if __name__ == "__main__":
    sys.exit(main())
