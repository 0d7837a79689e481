"""The fast proxy for Twin-GAN variants: a short 32 px run scored on held-out pictures.

Trains one variant (a preset plus `key=value` overrides) for --minutes of wall-clock time (or
--max-images images), at 32 px unless told otherwise, on quality_run.py's training split of
../shared/data/selfie2anime, then scores its EMA networks on that script's 300 + 300 held-out
pictures at the trained size: SWD of photo -> anime against held-out anime, anime -> photo
likewise, the face rates of both directions, and reconstruction L1
(twingan.evaluation.scores.proxy_scores). One JSON line per run is
printed and appended to WORK/proxy.jsonl, with images seen and images/s, for docs/quality.md.

    python tools/proxy_run.py --name base                                  # twingan_cpu_64 as it is
    python tools/proxy_run.py --name v1 --preset twingan_cpu_64_v1         # the ablation table's base
    python tools/proxy_run.py --name instance model.norm=instance          # one change
    python tools/proxy_run.py --name instance-s1 --seed 1 model.norm=instance
    python tools/proxy_run.py --name big --resolution 64 --minutes 25      # the full run's size
    python tools/proxy_run.py --name full --resolution 64 --preset-schedule --max-images 21600  # its images

Run one at a time on a CPU: a second busy process makes both many times slower.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from quality_run import ROOT, split

PROXY_OVERRIDES = ["train.phase_images=1000", "train.final_phase_images=1000000"]
"""The proxy's schedule: 1000 images per growing phase, then 32 px until the time is up, so that
five minutes on two cores spend most of their images at the final size, as the full run does."""
DEFAULT_MINUTES = 5.0


def train(args: argparse.Namespace, data: dict[str, Path], run: Path) -> float:
    """Train the variant; returns the wall-clock seconds the training command took."""
    budget = [f"train.max_images={args.max_images}"] if args.max_images else []
    if args.minutes or not args.max_images:
        budget.append(f"train.max_minutes={args.minutes or DEFAULT_MINUTES}")
    schedule = [] if args.preset_schedule else PROXY_OVERRIDES
    command = [sys.executable, "-m", "twingan", "train", args.preset,
               "--a", str(data["train_a"]), "--b", str(data["train_b"]),
               "--run-dir", str(run), "--no-progress", f"model.resolution={args.resolution}",
               f"train.seed={args.seed}", "train.sample_every=1000000", "train.checkpoint_every=1000000",
               *schedule, *budget, *args.overrides]
    print(" ".join(command), flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - started


def score(run: Path, data: dict[str, Path], device: str) -> dict:
    from twingan.evaluation.scores import evaluate, load_set, proxy_scores
    from twingan.infer.translator import Translator

    translator = Translator.from_checkpoint(run, device)
    size = translator.resolution
    sets = {d: load_set(data[f"test_{d}"], size, translator.cfg.data.resize, []) for d in "ab"}
    return proxy_scores(evaluate(sets, translator, None, progress=False))


def images_per_second(run: Path) -> float | None:
    """Median images/s over the run's logged windows (the first window includes start-up)."""
    rates = [json.loads(line)["images_per_second"] for line in (run / "metrics.jsonl").read_text().splitlines()[1:]]
    return sorted(rates)[len(rates) // 2] if rates else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="The variant's name in the results.")
    parser.add_argument("--preset", default="twingan_cpu_64")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--minutes", type=float,
                        help=f"Wall-clock budget (default {DEFAULT_MINUTES:g} without --max-images, else none).")
    parser.add_argument("--max-images", type=int, help="Stop after this many images (and --minutes, if given).")
    parser.add_argument("--preset-schedule", action="store_true",
                        help="Keep the preset's phase lengths (the full run's schedule) instead of the proxy's.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "selfie2anime")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "quality")
    parser.add_argument("--results", type=Path, help="JSON lines file to append to (default WORK/proxy.jsonl).")
    parser.add_argument("overrides", nargs="*", help="Config overrides, key=value, that make the variant.")
    args = parser.parse_args()
    data = split(args.data, args.work)
    run = args.work / "proxy" / f"{args.name}-s{args.seed}"
    seconds = train(args, data, run)
    checkpoint = max((run / "checkpoints").glob("ckpt-*.pt"))
    record = {"name": args.name, "seed": args.seed, "resolution": args.resolution, "overrides": args.overrides,
              "images_seen": int(checkpoint.stem.split("-")[1]), "train_seconds": round(seconds, 1),
              "images_per_second": images_per_second(run), **score(run, data, args.device)}
    line = json.dumps(record)
    print(line, flush=True)
    with (args.results or args.work / "proxy.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


if __name__ == "__main__":
    sys.exit(main())
