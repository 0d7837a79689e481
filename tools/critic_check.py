"""Can Twin-GAN's critic tell anime from photos? Two checks behind docs/quality.md's critic section.

A discriminator whose loss sits at chance for a whole run (2 ln 2 = 1.386 per domain for the
non-saturating loss) gives the generator nothing to follow. These checks say whether that is the
critic's own fault or the game's:

    # train a fresh critic of the preset on real anime (as real) against real photos (as fake)
    python tools/critic_check.py --preset twingan_cpu_64 --steps 300
    python tools/critic_check.py --preset twingan_cpu_64 --penalty none
    python tools/critic_check.py --preset twingan_cpu_64 model.discriminator=global

    # read out a trained run's anime critic on real anime, translated photos and real photos
    python tools/critic_check.py --checkpoint runs/quality/runs/twingan

    # train a fresh critic on real anime against a run's photo -> anime translations: if it
    # learns to tell them apart while the run's own critic sat near chance, the run's critic lagged
    python tools/critic_check.py --against runs/quality/runs/twingan-ref

Both use tools/quality_run.py's split (training pictures to learn from, held-out ones to score).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import torch
from quality_run import ROOT

from twingan.checkpoint import find_checkpoint, load_checkpoint
from twingan.config import config_from_dict, load_config
from twingan.domains import DOMAIN_A, DOMAIN_B, DOMAINS
from twingan.evaluation.scores import load_set
from twingan.infer.translator import Translator
from twingan.models import losses

BATCH = 8
HELD_OUT = 200
TRANSLATED = 1500
"""Training photos translated for --against: enough that 300 steps of 8 rarely repeat one."""


def mean_scores(critic: torch.nn.Module, x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Each picture's mean score: what the GAN losses average."""
    return critic(x, resolution).reshape(x.shape[0], -1).mean(1)


@torch.no_grad()
def translations(checkpoint: Path, photos: torch.Tensor) -> torch.Tensor:
    """Photo -> anime as `twingan translate` makes it, in chunks so a few thousand pictures fit in memory."""
    translator = Translator.from_checkpoint(checkpoint, "cpu")
    return torch.cat([translator.run(chunk) for chunk in photos.split(100)])


def train_fresh(args: argparse.Namespace, data: Path) -> None:
    from twingan.models.twingan.networks import Discriminator

    cfg = load_config(args.preset, [f"model.resolution={args.resolution}", *args.overrides])
    res = cfg.model.resolution
    train = {d: load_set(data / f"train_{d}", res, cfg.data.resize, []) for d in "ab"}
    test = {d: load_set(data / f"test_{d}", res, cfg.data.resize, [])[:HELD_OUT] for d in "ab"}
    if args.against:
        train["a"] = translations(args.against, train["a"][:TRANSLATED])
        test["a"] = translations(args.against, test["a"])
    torch.manual_seed(args.seed)
    critic = Discriminator(cfg.model)
    opt = torch.optim.Adam(critic.parameters(), lr=cfg.train.lr, betas=(cfg.train.beta1, cfg.train.beta2))
    judge = functools.partial(mean_scores, critic, resolution=res)
    started = time.monotonic()
    for step in range(args.steps + 1):
        real = train["b"][torch.randint(0, len(train["b"]), (BATCH,))]
        fake = train["a"][torch.randint(0, len(train["a"]), (BATCH,))]
        loss = losses.discriminator_loss(critic(real, res), critic(fake, res), cfg.loss.gan)
        if args.penalty != "none":
            loss = loss + cfg.loss.penalty_weight * losses.gradient_penalty(args.penalty, judge, real)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                anime, photo = judge(test["b"]), judge(test["a"])
            accuracy = ((anime > 0).float().mean() + (photo < 0).float().mean()) / 2
            fakes = "translation" if args.against else "photo"
            print(f"step {step}: loss {loss.item():.3f}, held-out accuracy {accuracy:.2f}, mean score anime "
                  f"{anime.mean():.2f} / {fakes} {photo.mean():.2f} ({time.monotonic() - started:.0f} s)", flush=True)


@torch.no_grad()
def read_out(args: argparse.Namespace, data: Path) -> None:
    from twingan.models.twingan.networks import Discriminator, TwinGAN

    path = find_checkpoint(args.checkpoint)
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"], f"checkpoint {path}")
    res = cfg.model.resolution
    critics = torch.nn.ModuleList(Discriminator(cfg.model) for _ in DOMAINS)
    critics.load_state_dict(state["discs"])
    net = TwinGAN(cfg.model).eval()
    net.load_state_dict(state["ema"])
    photos = load_set(data / "test_a", res, cfg.data.resize, [])[:HELD_OUT]
    anime = load_set(data / "test_b", res, cfg.data.resize, [])[:HELD_OUT]
    latent, skips = net.encoder(photos, DOMAIN_A, res)
    translated = net.generator(latent, skips, DOMAIN_B, res, source=DOMAIN_A)
    critic = critics[DOMAIN_B]
    for name, x in (("real anime", anime), ("translated photos", translated), ("real photos", photos)):
        scores = mean_scores(critic, x, res)
        print(f"{name}: mean score {scores.mean():.3f}, scored as anime {(scores > 0).float().mean():.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="Read out this run's critic instead of training one.")
    parser.add_argument("--against", type=Path,
                        help="Train the fresh critic against this run's photo -> anime translations, not photos.")
    parser.add_argument("--preset", default="twingan_cpu_64")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--penalty", choices=["dragan", "r1", "none"], default="dragan")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "quality",
                        help="quality_run.py's work folder, whose data/ holds the split.")
    parser.add_argument("overrides", nargs="*", help="Config overrides, key=value.")
    args = parser.parse_args()
    data = args.work / "data"
    if not (data / "test_a").is_dir():
        raise SystemExit(f"{data} holds no split: run python tools/quality_run.py --stage eval once, or give --work")
    if args.checkpoint:
        read_out(args, data)
    else:
        train_fresh(args, data)


if __name__ == "__main__":
    main()
