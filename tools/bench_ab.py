"""Training images/s of several variants, taken in turn in one sitting: code trees and overrides.

Each variant is LABEL=TREE[:OVERRIDE,...]: a checkout of this project (its own tools/bench_train.py
runs with its own twingan package first on PYTHONPATH) and section.key=value overrides. The
variants run one after another, round after round (A B C A B C ...), each in a fresh process, so a
drift in the machine's speed touches them all alike; the ratio to the first variant is taken round
by round, then its median. Nothing else should run meanwhile: on 2 cores a second busy process
makes the figures meaningless.

    python tools/bench_ab.py --resolution 64 --rounds 5 \\
        before=/tmp/old-checkout:runtime.precision=fp32 after=.
    python tools/bench_ab.py --resolution 128 preset=. no-nce=.:loss.nce=0
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path


def parse_variant(text: str) -> tuple[str, Path, list[str]]:
    label, _, rest = text.partition("=")
    tree, _, overrides = rest.partition(":")
    if not label or not tree:
        raise SystemExit(f"variant {text!r}: write LABEL=TREE[:OVERRIDE,...]")
    return label, Path(tree).resolve(), [o for o in overrides.split(",") if o]


def images_per_second(tree: Path, preset: str, resolution: int, steps: int, overrides: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(tree / "tools" / "bench_train.py"), "--preset", preset, "--resolutions",
               str(resolution), "--steps", str(steps), "--warmup", "3", *overrides]
    out = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True).stdout
    row = re.search(rf"^\s*{resolution}\s+\d+\s+([\d.]+)", out, re.MULTILINE)
    if row is None:
        raise SystemExit(f"no figure in the output of {' '.join(command)}:\n{out}")
    return float(row.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="LABEL=TREE[:OVERRIDE,...]; the first is the yardstick")
    parser.add_argument("--preset", default="twingan_cpu_64")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    rates: dict[str, list[float]] = {label: [] for label, *_ in variants}
    for round_ in range(args.rounds):
        for label, tree, overrides in variants:
            rates[label].append(images_per_second(tree, args.preset, args.resolution, args.steps, overrides))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rates.items()), flush=True)
    first = variants[0][0]
    print(f"\n{args.preset} at {args.resolution} px, {args.steps} steps a run, {args.rounds} rounds (images/s)")
    print("| variant | min | median | max | x first (median of rounds) |")
    print("|---|---|---|---|---|")
    for label, values in rates.items():
        ratio = statistics.median(v / b for v, b in zip(values, rates[first]))
        print(f"| {label} | {min(values):.2f} | {statistics.median(values):.2f} | {max(values):.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
