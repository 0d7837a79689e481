"""Side-by-side quality: Twin-GAN and the CycleGAN baseline, same data, same wall-clock budget.

1. Split ../shared/data/selfie2anime: 300 pictures per domain (a fixed random choice, seed 0)
   are held out as test sets; the rest train. The split is made of symbolic links in WORK/data.
2. Train `twingan_cpu_64` and `cyclegan_cpu_64` with `twingan train`, each stopped after
   --minutes (a run folder that already holds a checkpoint is reused unless --retrain).
3. Evaluate both with `twingan eval` on the held-out sets, plus a do-nothing row: the
   untranslated test pictures compared with the other domain's.
4. Print one table per direction and write it into README.md between the quality markers.

    python tools/quality_run.py --minutes 30                    # about 65 minutes on 2 CPU cores
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

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"twingan": "twingan_cpu_64", "cyclegan": "cyclegan_cpu_64"}
HELD_OUT = 300


def split(source: Path, work: Path) -> dict[str, Path]:
    """WORK/data/{train,test}_{a,b}: links to the pictures of each part."""
    folders = {}
    for domain, name in (("a", "trainA"), ("b", "trainB")):
        pictures = sorted((source / name).iterdir())
        test = set(random.Random(0).sample(range(len(pictures)), HELD_OUT))
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
                   "--run-dir", str(run), "--no-progress", f"train.max_minutes={minutes}"]
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


def table(reports: dict[str, dict]) -> str:
    from twingan.evaluate import DIRECTION_NAMES, markdown

    parts = []
    for direction, title in DIRECTION_NAMES.items():
        rows = {name: report["directions"][direction] for name, report in reports.items()}
        parts += [f"**{title}** (held-out: {HELD_OUT} + {HELD_OUT} pictures)", "", markdown(rows, "model"), ""]
    return "\n".join(parts)


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text()
    begin, end = "<!-- quality:begin -->", "<!-- quality:end -->"
    if begin not in content:
        raise SystemExit("README.md has no <!-- quality:begin --> marker")
    head, rest = content.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}")


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


if __name__ == "__main__":
    sys.exit(main())
