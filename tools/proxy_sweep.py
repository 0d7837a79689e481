"""Run many proxy variants side by side (a GPU machine), each a `tools/proxy_run.py` process.

A variants file has one variant per line: its name, then its overrides (`#` starts a comment).
Every variant runs once per seed with the same image budget (--max-images), --jobs at a time;
no new run starts after --deadline minutes, so a lease with a hard limit still returns every
finished result. Results are appended to --results as each run ends.

    python tools/proxy_sweep.py tools/proxy_variants.txt --preset twingan_cpu_64_v1 --seeds 0 1 \\
        --max-images 12000 --jobs 12 --device cuda --results runs/quality/proxy.jsonl

On the H200 this project was lent, 16 such processes at once (12 at 32 px, 4 at 64 px) ran at
only about 32 images/s each: many small processes time-slice one GPU badly. Fewer jobs, or one
process with larger batches, would use it better. Eight 64 px runs at once (tools/gpu64_variants.txt)
trained at about 27 images/s each, but their eight scorings at once (SWD and face detection,
each process with all 16 CPU threads) did not finish in the 2.5 minutes left of the lease: give
--minutes a margin of several minutes for scoring, or score the checkpoints elsewhere.

Fixed images, not fixed minutes: on a shared GPU the processes slow each other down unevenly,
so a variant's CPU cost is measured apart (tools/bench_train.py, or proxy_run.py on a CPU).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from quality_run import ROOT, split

TOOLS = Path(__file__).resolve().parent


def read_variants(path: Path) -> list[tuple[str, list[str]]]:
    variants = []
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words:
            variants.append((words[0], words[1:]))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--preset", default="twingan_cpu_64")
    parser.add_argument("--max-images", type=int, required=True)
    parser.add_argument("--minutes", type=float, help="Wall-clock cap per run, beside --max-images.")
    parser.add_argument("--preset-schedule", action="store_true", help="The preset's phase lengths (proxy_run.py).")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=float("inf"), help="Minutes after which no run starts.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--logs", type=Path, help="Folder for each run's output (default: beside --results).")
    args = parser.parse_args()
    started = time.monotonic()
    logs = args.logs or args.results.parent / "proxy-logs"
    logs.mkdir(parents=True, exist_ok=True)
    split(args.data or ROOT.parent / "shared" / "data" / "selfie2anime", args.work or ROOT / "runs" / "quality")
    runs = [(name, overrides, seed) for seed in args.seeds for name, overrides in read_variants(args.variants)]

    def one(run: tuple[str, list[str], int]) -> str:
        name, overrides, seed = run
        if (time.monotonic() - started) / 60 > args.deadline:
            return f"{name} s{seed}: not started (deadline)"
        command = [sys.executable, str(TOOLS / "proxy_run.py"), "--name", name, "--seed", str(seed),
                   "--preset", args.preset,
                   "--max-images", str(args.max_images), "--resolution", str(args.resolution),
                   *(["--minutes", str(args.minutes)] if args.minutes else []),
                   *(["--preset-schedule"] if args.preset_schedule else []),
                   "--device", args.device, "--results", str(args.results),
                   *(["--work", str(args.work)] if args.work else []),
                   *(["--data", str(args.data)] if args.data else []), *overrides,
                   "runtime.cpu_threads=1", f"runtime.device={args.device}"]
        with (logs / f"{name}-s{seed}.log").open("w") as log:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
        return f"{name} s{seed}: exit {code} after {(time.monotonic() - started) / 60:.1f} min"

    with ThreadPoolExecutor(args.jobs) as pool:
        for message in pool.map(one, runs):
            print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
