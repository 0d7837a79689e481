"""Twin-GAN beyond selfies, from about a hundred pictures a side: photos -> cats and cat <-> dog.

1. Split ../shared/data: of each small domain (cat2dog/cat, cat2dog/dog: 100 pictures each) a
   fixed random 10 are held out; of the photos (selfie2anime/trainA) 50. The split is made of
   symbolic links in WORK/PAIR/data.
2. Train each --preset on the pair for --minutes (`twingan train ... train.max_minutes=N`); a run
   folder that already holds a checkpoint is reused unless --retrain.
3. Evaluate each run and doing nothing with `twingan eval` on the held-out pictures (SWD, colour
   distance, detail; the anime-face rate means nothing for cats and dogs) and print the tables.
4. Draw WORK/PAIR/grid-a2b.png and grid-b2a.png: the held-out pictures, then each preset's
   translation of them, 2x enlarged.

    python tools/small_pairs.py --pair cat2dog --minutes 25                      # ~30 min on 2 cores
    python tools/small_pairs.py --pair photo2cat --minutes 25 --preset twingan_cpu_64_small
    python tools/small_pairs.py --pair cat2dog --preset twingan_cpu_64 --preset twingan_cpu_64_small
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from quality_run import link_split, side_by_side, table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
PAIRS = {
    "cat2dog": (DATA / "cat2dog" / "cat", DATA / "cat2dog" / "dog"),
    "photo2cat": (DATA / "selfie2anime" / "trainA", DATA / "cat2dog" / "cat"),
}
HELD_OUT = {100: 10}
"""Pictures held out of a domain of this many; larger domains hold out 50."""
GRID_PICTURES = 8


def split(pair: str, work: Path) -> dict[str, Path]:
    """WORK/data/{train,test}_{a,b}: links to the pictures of each part (seed 0)."""
    domains = {}
    for domain, source in zip("ab", PAIRS[pair]):
        if not source.is_dir():
            raise SystemExit(f"{source} is missing: this tool needs ../shared/data beside the project")
        count = sum(1 for _ in source.iterdir())
        domains[domain] = (source, HELD_OUT.get(count, 50))
    return link_split(domains, work)


def train(work: Path, data: dict[str, Path], presets: list[str], minutes: float, retrain: bool) -> dict[str, Path]:
    runs = {}
    for preset in presets:
        run = runs[preset] = work / "runs" / preset
        if not retrain and any((run / "checkpoints").glob("ckpt-*.pt")):
            print(f"reusing {run}")
            continue
        command = ["twingan", "train", preset, "--a", str(data["train_a"]), "--b", str(data["train_b"]),
                   "--run-dir", str(run), "--no-progress", f"train.max_minutes={minutes}", "train.eval_every=null"]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
    return runs


def evaluate(work: Path, data: dict[str, Path], runs: dict[str, Path]) -> dict[str, dict]:
    reports = {}
    for name, source in [*((p, ["--checkpoint", str(r)]) for p, r in runs.items()), ("do nothing", ["--identity"])]:
        out = work / f"eval-{name.replace(' ', '-')}.json"
        command = ["twingan", "eval", *source, "--a", str(data["test_a"]), "--b", str(data["test_b"]),
                   "-o", str(out), "--no-progress", "--size", "64"]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
        reports[name] = json.loads(out.read_text())
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), required=True)
    parser.add_argument("--preset", action="append", help="Presets to train (default: twingan_cpu_64_small)")
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "small_pairs")
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args()
    work = args.work / args.pair
    data = split(args.pair, work)
    runs = train(work, data, args.preset or ["twingan_cpu_64_small"], args.minutes, args.retrain)
    held_out = " + ".join(str(len(list(data[f"test_{d}"].iterdir()))) for d in "ab")
    print(table(evaluate(work, data, runs), held_out))
    for direction in ("a2b", "b2a"):
        pictures = sorted(data[f"test_{direction[0]}"].iterdir())[:GRID_PICTURES]
        side_by_side(runs, pictures, work / f"grid-{direction}.png", direction)
        print(f"wrote {work / f'grid-{direction}.png'}")


if __name__ == "__main__":
    main()
