"""Training-step throughput: images/s and peak memory of full training steps per resolution.

A full step is what training does per batch. Twin-GAN: device augmentation, the generator pass
(encode both domains, reconstruct, translate, re-encode), all losses, the generator update, the
EMA update, then the discriminator pass with its gradient penalty and update. CycleGAN: both
generators, both discriminators, all losses (GAN, cycle, identity), the pools and both optimizer
steps. Batches are synthetic (random uint8 pictures) so the figure is the model's, not the
disk's; see bench_data.py for that, and bench_cyclegan_reference.py for CycleGAN against the
public reference loop.

    python tools/bench_train.py --preset twingan_cpu_64 --resolutions 64
    python tools/bench_train.py --preset twingan_selfie2anime_256 --resolutions 64 128 256 --device cuda
    python tools/bench_train.py --preset cyclegan_selfie2anime_256 --resolutions 64 128 256
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from twingan.config import load_config
from twingan.models import family
from twingan.train.trainer import Trainer


def make_trainer(preset: str, resolution: int, device: str, overrides: list[str], tmp: Path) -> Trainer:
    """A trainer of the preset that starts at `resolution` (no growing), on a one-picture data set
    in `tmp`: the benchmarks feed it synthetic batches."""
    for domain in ("a", "b"):
        (tmp / domain).mkdir()
        Image.new("RGB", (resolution, resolution), (120, 90, 60)).save(tmp / domain / "0.png")
    common = [f"model.resolution={resolution}", f"data.domain_a={tmp}/a", f"data.domain_b={tmp}/b",
              f"runtime.device={device}", *overrides]
    cfg = load_config(preset, common)
    if family(cfg.model.name).grows:
        cfg = load_config(preset, [f"train.start_resolution={resolution}", *common])
    return Trainer(cfg, tmp / "run", progress=False)


def synthetic_batches(trainer: Trainer, phase, resolution: int) -> list[torch.Tensor]:
    """Random uint8 pictures, one batch per domain, of the phase's batch size."""
    shape = (trainer.recipe.batch_size(phase), 1 if trainer.cfg.data.grayscale else 3, resolution, resolution)
    return [torch.randint(0, 256, shape, dtype=torch.uint8) for _ in range(2)]


def measure(preset: str, resolution: int, steps: int, warmup: int, device: str,
            overrides: list[str]) -> tuple[float, int, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(preset, resolution, device, overrides, Path(tmp))
        cfg = trainer.cfg
        phase = trainer.phases[-1]
        batches = synthetic_batches(trainer, phase, resolution)
        batch = batches[0].shape[0]
        is_cuda = trainer.device.type == "cuda"

        def sync() -> None:
            if is_cuda:
                torch.cuda.synchronize()

        def step() -> None:
            """As the training loop: the image count moves on, so a lazy penalty (loss.penalty_every)
            falls on its share of the steps."""
            trainer.step(*batches, phase)
            trainer.counters.images_seen += batch

        lazy = getattr(cfg.loss, "penalty_every", 1)
        steps = -(-steps // lazy) * lazy  # whole multiples, so the timed steps hold their share of penalties
        for _ in range(warmup):
            step()
        sync()
        if is_cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rate = steps * batch / (time.perf_counter() - start)
        if is_cuda:
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return rate, batch, peak / 2**20, trainer.precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="twingan_selfie2anime_256")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--steps", type=int, default=5,
                        help="timed steps, rounded up to a multiple of loss.penalty_every")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("overrides", nargs="*", help="extra section.key=value overrides")
    args = parser.parse_args()
    print(f"preset {args.preset}, {args.steps} timed steps after {args.warmup} warm-up steps, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"{'resolution':>10} {'batch':>6} {'images/s':>9} {'peak MB':>9} {'precision':>9}")
    for resolution in args.resolutions:
        rate, batch, peak, precision = measure(args.preset, resolution, args.steps, args.warmup, args.device,
                                               args.overrides)
        print(f"{resolution:>10} {batch:>6} {rate:>9.2f} {peak:>9.0f} {precision:>9}")
    print("peak MB: CUDA max allocated per resolution, or the process's peak RSS so far on CPU")


if __name__ == "__main__":
    main()
