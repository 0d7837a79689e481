"""Translation speed: one photo end to end (process start to PNG written) and folder throughput.

Builds an untrained checkpoint of the chosen preset (speed does not depend on training), then
  1. runs `twingan translate photo.jpg` on one 256 px photo in a fresh process, timing from
     launch to the PNG on disk (median, best and worst of --runs);
  2. translates a folder of 512 px JPEGs in-process and reports images/s and peak memory.

    python tools/bench_translate.py --preset twingan_selfie2anime_256
    python tools/bench_translate.py --preset cyclegan_selfie2anime_256 --pictures 32 --batch-size 4
    python tools/bench_translate.py --preset twingan_selfie2anime_256 --device cuda
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from twingan.cli.translate import plan_jobs, translate_files
from twingan.config import load_config
from twingan.infer.translator import Translator
from twingan.models import family
from twingan.train.trainer import Trainer


def make_checkpoint(preset: str, tmp: Path, device: str) -> Path:
    """A real checkpoint of `preset` after a single training image."""
    rng = np.random.default_rng(0)
    for domain in ("a", "b"):
        (tmp / domain).mkdir()
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(tmp / domain / "0.png")
    overrides = [f"data.domain_a={tmp}/a", f"data.domain_b={tmp}/b", "train.max_images=1",
                 "runtime.num_workers=0", f"runtime.device={device}", "data.verify=header"]
    cfg = load_config(preset, overrides)
    if family(cfg.model.name).grows:  # train straight at the final size, not through the 4 px phases
        cfg = load_config(preset, [*overrides, f"train.start_resolution={cfg.model.resolution}"])
    return Trainer(cfg, tmp / "run", progress=False).run().checkpoint


def photos(folder: Path, count: int, size: int = 512) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="twingan_selfie2anime_256")
    parser.add_argument("--pictures", type=int, default=32, help="folder size for the throughput run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs", type=int, default=9, help="fresh-process runs of the one-photo latency")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        checkpoint = make_checkpoint(args.preset, tmp, args.device)
        single = photos(tmp / "single", 1, size=256)[0]
        command = [sys.executable, "-m", "twingan", "translate", str(single), "-c", str(checkpoint),
                   "-o", str(tmp / "out.png"), "--device", args.device, "--no-progress"]
        latencies = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            latencies.append(time.perf_counter() - start)

        translator = Translator.from_checkpoint(checkpoint, args.device)
        jobs = plan_jobs([(p, Path(p.name)) for p in photos(tmp / "folder", args.pictures)], tmp / "folder_out")
        translate_files(translator, jobs[: args.batch_size], batch_size=args.batch_size, progress=False)
        if args.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        translate_files(translator, jobs, batch_size=args.batch_size, progress=False)
        if args.device == "cuda":
            torch.cuda.synchronize()
        rate = len(jobs) / (time.perf_counter() - start)
        peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(f"preset {args.preset} ({translator.model}, {translator.resolution} px), device {args.device}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"one 256 px photo, process start to PNG written, {len(latencies)} runs: "
          f"median {statistics.median(latencies):.2f} s, best {min(latencies):.2f} s, worst {max(latencies):.2f} s")
    print(f"folder of {len(jobs)} 512 px JPEGs, batch {args.batch_size}: {rate:.2f} images/s, "
          f"peak {'CUDA allocated' if args.device == 'cuda' else 'RSS'} {peak:.0f} MB")


if __name__ == "__main__":
    main()
