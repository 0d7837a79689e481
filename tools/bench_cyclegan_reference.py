"""CycleGAN training speed: our step against the public reference loop, same networks, same process.

The reference loop is a line-by-line re-implementation of `CycleGANModel.optimize_parameters`
from junyanz/pytorch-CycleGAN-and-pix2pix (forward: fake_B, rec_A, fake_A, rec_B; backward_G
with identity; backward_D_A and backward_D_B with the history pools; Python `random` pool as
there). Both loops start from the same weights and see the same pictures. Before timing, the
first steps' losses of the two loops are compared, so the speed-up cannot come from doing
different maths. Timed rounds alternate between the two loops so that machine noise hits both.

    python tools/bench_cyclegan_reference.py --resolutions 64 128
    python tools/bench_cyclegan_reference.py --resolutions 64 runtime.channels_last=true
"""

from __future__ import annotations

import argparse
import copy
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from twingan.config import load_config
from twingan.train.trainer import Trainer


class ReferencePool:
    """The reference ImagePool, as published (Python's random module)."""

    def __init__(self, size: int) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, self.size - 1)
                tmp = self.images[index].clone()
                self.images[index] = image
                out.append(tmp)
            else:
                out.append(image)
        return torch.cat(out, 0)


class ReferenceLoop:
    """optimize_parameters() of the reference CycleGANModel, LSGAN, identity on."""

    def __init__(self, gens, discs, lr: float, beta1: float, lambda_a: float, lambda_b: float, lambda_idt: float,
                 pool_size: int) -> None:
        self.net_g_a, self.net_g_b = gens  # G_A: A -> B, G_B: B -> A
        self.net_d_a, self.net_d_b = discs[1], discs[0]  # D_A judges B pictures, D_B judges A pictures
        params_g = [*self.net_g_a.parameters(), *self.net_g_b.parameters()]
        params_d = [*self.net_d_a.parameters(), *self.net_d_b.parameters()]
        self.opt_g = torch.optim.Adam(params_g, lr=lr, betas=(beta1, 0.999))
        self.opt_d = torch.optim.Adam(params_d, lr=lr, betas=(beta1, 0.999))
        self.lambda_a, self.lambda_b, self.lambda_idt = lambda_a, lambda_b, lambda_idt
        self.fake_a_pool, self.fake_b_pool = ReferencePool(pool_size), ReferencePool(pool_size)

    @staticmethod
    def gan(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.tensor(1.0 if target_is_real else 0.0).expand_as(prediction)
        return F.mse_loss(prediction, target)

    @staticmethod
    def set_requires_grad(nets, flag: bool) -> None:
        for net in nets:
            for param in net.parameters():
                param.requires_grad = flag

    def backward_d_basic(self, net_d, real, fake) -> torch.Tensor:
        loss = (self.gan(net_d(real), True) + self.gan(net_d(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, float]:
        fake_b = self.net_g_a(real_a)
        rec_a = self.net_g_b(fake_b)
        fake_a = self.net_g_b(real_b)
        rec_b = self.net_g_a(fake_a)
        self.set_requires_grad([self.net_d_a, self.net_d_b], False)
        self.opt_g.zero_grad()
        idt_a = self.net_g_a(real_b)
        loss_idt_a = F.l1_loss(idt_a, real_b) * self.lambda_b * self.lambda_idt
        idt_b = self.net_g_b(real_a)
        loss_idt_b = F.l1_loss(idt_b, real_a) * self.lambda_a * self.lambda_idt
        loss_g_a = self.gan(self.net_d_a(fake_b), True)
        loss_g_b = self.gan(self.net_d_b(fake_a), True)
        loss_cycle_a = F.l1_loss(rec_a, real_a) * self.lambda_a
        loss_cycle_b = F.l1_loss(rec_b, real_b) * self.lambda_b
        loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b
        loss_g.backward()
        self.opt_g.step()
        self.set_requires_grad([self.net_d_a, self.net_d_b], True)
        self.opt_d.zero_grad()
        loss_d_a = self.backward_d_basic(self.net_d_a, real_b, self.fake_b_pool.query(fake_b))
        loss_d_b = self.backward_d_basic(self.net_d_b, real_a, self.fake_a_pool.query(fake_a))
        self.opt_d.step()
        return {"gan_ab": loss_g_a.item(), "gan_ba": loss_g_b.item(), "d_b": loss_d_a.item(), "d_a": loss_d_b.item(),
                "cycle_a": loss_cycle_a.item() / self.lambda_a, "cycle_b": loss_cycle_b.item() / self.lambda_b}


def build(resolution: int, tmp: str, overrides: list[str]) -> Trainer:
    for domain in ("a", "b"):
        (Path(tmp) / domain).mkdir(exist_ok=True)
        Image.new("RGB", (resolution, resolution), (120, 90, 60)).save(Path(tmp) / domain / "0.png")
    cfg = load_config("cyclegan_selfie2anime_256", [
        f"model.resolution={resolution}", f"data.domain_a={tmp}/a", f"data.domain_b={tmp}/b", "runtime.device=cpu",
        *overrides])
    torch.manual_seed(0)
    return Trainer(cfg, Path(tmp) / "run", progress=False)


def compare(trainer: Trainer, batches: list[list[torch.Tensor]], steps: int) -> list[float]:
    """Per step, the largest relative difference between the two loops' losses.

    The first step starts from equal weights, so it shows rounding only (~1e-7: stacked
    convolutions sum in another order). Adam's first updates divide by tiny second moments, which
    amplifies that rounding step by step, so later steps drift apart slowly (~1e-4 by step 3).
    """
    recipe = trainer.recipe
    reference = ReferenceLoop(copy.deepcopy(recipe.gens), copy.deepcopy(recipe.discs), recipe.cfg.train.lr,
                              recipe.cfg.train.beta1, recipe.cfg.loss.cycle_a, recipe.cfg.loss.cycle_b,
                              recipe.cfg.loss.identity, recipe.cfg.train.pool_size)
    worst = []
    for real_a, real_b in batches[:steps]:
        ours = recipe.step([real_a, real_b], trainer.phases[0], 0)
        theirs = reference.step(real_a, real_b)
        worst.append(max(abs(ours[k] - v) / max(abs(v), 1e-8) for k, v in theirs.items()))
    return worst


def measure(resolution: int, steps: int, rounds: int, overrides: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build(resolution, tmp, overrides)
        recipe = trainer.recipe
        batch = recipe.cfg.train.batch_size
        generator = torch.Generator().manual_seed(1)
        batches = [[torch.rand(batch, 3, resolution, resolution, generator=generator) * 2 - 1 for _ in range(2)]
                   for _ in range(steps)]
        batches = [[x.contiguous(memory_format=trainer.memory_format) for x in pair] for pair in batches]
        difference = compare(trainer, batches, 1)[0]
        reference = ReferenceLoop(copy.deepcopy(recipe.gens).to(memory_format=torch.contiguous_format),
                                  copy.deepcopy(recipe.discs).to(memory_format=torch.contiguous_format),
                                  recipe.cfg.train.lr, recipe.cfg.train.beta1, recipe.cfg.loss.cycle_a,
                                  recipe.cfg.loss.cycle_b, recipe.cfg.loss.identity, recipe.cfg.train.pool_size)
        plain = [[x.contiguous() for x in pair] for pair in batches]
        rates: dict[str, list[float]] = {"reference": [], "ours": []}
        for _ in range(rounds):
            start = time.perf_counter()
            for real_a, real_b in plain:
                reference.step(real_a, real_b)
            rates["reference"].append(steps * batch / (time.perf_counter() - start))
            start = time.perf_counter()
            for real_a, real_b in batches:
                recipe.step([real_a, real_b], trainer.phases[0], 0)
            rates["ours"].append(steps * batch / (time.perf_counter() - start))
        ref, ours = statistics.median(rates["reference"]), statistics.median(rates["ours"])
        return {"reference": ref, "ours": ours, "ratio": ours / ref, "difference": difference, "batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round and loop")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds; the median counts")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides for our side "
                                                     "(e.g. runtime.channels_last=true, train.batch_size=4)")
    args = parser.parse_args()
    random.seed(0)
    print(f"ResNet-9 + PatchGAN, LSGAN, identity on; {torch.get_num_threads()} CPU threads, torch {torch.__version__}; "
          f"overrides: {' '.join(args.overrides) or 'none'}")
    print(f"{'resolution':>10} {'batch':>6} {'reference img/s':>16} {'ours img/s':>11} {'ratio':>6} "
          f"{'loss diff':>10} {'peak RSS MB':>12}")
    for resolution in args.resolutions:
        r = measure(resolution, args.steps, args.rounds, args.overrides)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{resolution:>10} {r['batch']:>6} {r['reference']:>16.2f} {r['ours']:>11.2f} {r['ratio']:>6.2f} "
              f"{r['difference']:>10.1e} {peak:>12.0f}")
    print("loss diff: largest relative difference of any loss term in the first step from equal weights")


if __name__ == "__main__":
    main()
