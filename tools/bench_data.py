"""Data pipeline throughput: decoded, preprocessed and augmented images per second.

Measures what a training step waits for: the loader (decode + resize + crop + flip in worker
processes) and the device-side augmentation (rotation, brightness, saturation), separately and
together, plus peak memory. Uses a folder you give, or makes synthetic 512 px JPEGs.

    python tools/bench_data.py --folder ../shared/data/selfie2anime/trainA --size 128 --workers 2
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from twingan.config import DataConfig
from twingan.data.dataset import DomainDataset, scan_domain
from twingan.data.loader import LoaderSettings, make_loader
from twingan.data.transforms import DeviceAugment, loader_transform


def synthetic_folder(root: Path, count: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((size, size), Image.BICUBIC).save(root / f"{i:05d}.jpg", quality=90)
    return root


def rate(fn, batches: int, batch_size: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(batches):
        fn()
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="pictures to load (default: synthetic 512 px JPEGs)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or synthetic_folder(Path(tmp), 256, 512)
        cfg = DataConfig(rotation=5.0)
        paths = scan_domain(folder, "A", cfg.max_pixels, verify="header", progress=False).paths
        dataset = DomainDataset(paths, loader_transform(cfg, args.size), cfg.max_pixels,
                                draft_size=(args.size, args.size))
        device = torch.device(args.device)
        settings = LoaderSettings(args.batch_size, args.workers, pin_memory=device.type == "cuda")
        batches = iter(make_loader(dataset, settings))
        augment = DeviceAugment(cfg).to(device)
        sample = next(batches).to(device)

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        load_rate = rate(lambda: next(batches), args.batches, args.batch_size)
        augment_rate = rate(lambda: (augment(sample), sync()), args.batches, args.batch_size)
        both_rate = rate(lambda: (augment(next(batches).to(device, non_blocking=True)), sync()),
                         args.batches, args.batch_size)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'stage':<22}{'images/s':>10}")
    print(f"{'loader':<22}{load_rate:>10.0f}")
    print(f"{'device augment':<22}{augment_rate:>10.0f}")
    print(f"{'loader + augment':<22}{both_rate:>10.0f}")
    print(f"size {args.size}px, batch {args.batch_size}, workers {args.workers}, device {device}, "
          f"{torch.get_num_threads()} torch threads; peak RSS of the main process {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
