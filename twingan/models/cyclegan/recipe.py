"""CycleGAN's part of a training step, with the public reference's maths (Zhu et al. 2017).

Two generators (A -> B, B -> A), two PatchGAN discriminators, LSGAN/vanilla/WGAN-GP, cycle L1
per direction, identity L1, history pools, Adam with a constant-then-linear-decay learning rate.

Faster than the reference loop with the same numbers: with instance norm every picture is
normalised on its own, so the calls that share a network are stacked into one batch (A -> B on
the real A and, for the identity term, the real B; B -> A on the real B, the real A and the
fake B for the cycle; a discriminator on its real and pooled fake pictures). Six generator
calls become three and four discriminator calls two, which keeps the convolutions busier at the
reference's batch size of 1. With batch norm, stacking would mix batch statistics, so every
call then runs alone, exactly as the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from twingan import distributed
from twingan.config import CycleGANConfig
from twingan.domains import DOMAIN_A as A
from twingan.domains import DOMAIN_B as B
from twingan.errors import ConfigError, UserError
from twingan.models import losses
from twingan.models.cyclegan.image_pool import ImagePool
from twingan.models.cyclegan.networks import build_discriminator, build_generator
from twingan.models.protocols import TrainingData
from twingan.models.schedule import Phase
from twingan.models.stepping import StepContext, adam, keep_fused

GAN_KINDS = {"lsgan": "lsgan", "vanilla": "nonsaturating", "wgangp": "wgan"}
"""loss.gan, named as the reference names it -> the same objective in twingan.models.losses (the
reference's vanilla GANLoss is binary cross-entropy on logits: the non-saturating loss)."""


def lr_factor(images_seen: int, epoch_images: int, epochs: int, decay_epochs: int) -> float:
    """The reference's linear rule: 1 for `epochs` epochs, then 1 - k / (decay_epochs + 1) in decay epoch k.

    A pure function of images seen, so a resumed run in the decay phase gets the right rate without
    any scheduler state.
    """
    epoch = images_seen // epoch_images
    return 1.0 - max(0, epoch + 1 - epochs) / (decay_epochs + 1)


def check_config(cfg: CycleGANConfig) -> None:
    """The rules between keys a CycleGAN config must meet, checked where it is loaded and again by
    the recipe. Raises ConfigError naming the key."""
    m, t = cfg.model, cfg.train
    if m.generator == "resnet" and m.resolution % 4:
        raise ConfigError(f"model.resolution {m.resolution} must be a multiple of 4 for the ResNet generator")
    if t.epochs + t.decay_epochs == 0:
        raise ConfigError("train.epochs and train.decay_epochs are both 0: nothing to train")
    try:
        with torch.device("meta"):
            build_generator(m, 3)
            build_discriminator(m, 3)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class CycleGANRecipe:
    """Everything model-specific the generic training loop asks of CycleGAN (protocols.Recipe).

    An epoch is the larger domain's size unless train.epoch_images sets it; the whole run is one
    phase at the final size.
    """

    def __init__(self, cfg: CycleGANConfig, ctx: StepContext, data: TrainingData) -> None:
        self.cfg, self.ctx = cfg, ctx
        m, t = cfg.model, cfg.train
        check_config(cfg)
        self.epoch_images = t.epoch_images or max(data.domain_sizes)
        self.phases = [Phase.fixed(m.resolution, (t.epochs + t.decay_epochs) * self.epoch_images)]
        self.gan = GAN_KINDS[cfg.loss.gan]
        try:
            self.gens = nn.ModuleList(build_generator(m, data.image_channels) for _ in (A, B)).to(ctx.device)
            self.discs = nn.ModuleList(build_discriminator(m, data.image_channels) for _ in (A, B)).to(ctx.device)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.gens.to(memory_format=ctx.memory_format)
        self.discs.to(memory_format=ctx.critic_memory_format)
        distributed.broadcast_parameters(self.gens, ctx.dist)
        distributed.broadcast_parameters(self.discs, ctx.dist)
        settings = {"lr": t.lr, "betas": (t.beta1, t.beta2)}
        self.opt_g = adam(self.gens.parameters(), ctx.device, **settings)
        self.opt_d = adam(self.discs.parameters(), ctx.device, **settings)
        self.scaler_g, self.scaler_d = ctx.grad_scaler(), ctx.grad_scaler()
        self.pools = [ImagePool(t.pool_size), ImagePool(t.pool_size)]
        self.stack_calls = m.norm == "instance"

    @property
    def gen_ab(self) -> nn.Module:
        return self.gens[A]

    @property
    def gen_ba(self) -> nn.Module:
        return self.gens[B]

    def batch_size(self, phase: Phase) -> int:
        return self.cfg.train.batch_size

    def learning_rate(self, images_seen: int) -> float:
        t = self.cfg.train
        return t.lr * lr_factor(images_seen, self.epoch_images, t.epochs, t.decay_epochs)

    def _calls(self, net: nn.Module, inputs: list[Tensor]) -> list[Tensor]:
        """net(x) for every x: one stacked call when per-picture normalisation makes it the same maths."""
        if self.stack_calls and len(inputs) > 1:
            return list(net(torch.cat(inputs)).split([x.shape[0] for x in inputs]))
        return [net(x) for x in inputs]

    # ----------------------------------------------------------------- one step
    def _generator_terms(self, real_a: Tensor, real_b: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        w = self.cfg.loss
        identity = w.identity > 0
        fake_b, *idt_b = self._calls(self.gen_ab, [real_a, *([real_b] if identity else [])])
        outputs = self._calls(self.gen_ba, [real_b, *([real_a] if identity else []),
                                            *([fake_b] if w.cycle_a > 0 else [])])
        fake_a = outputs.pop(0)
        idt_a = outputs.pop(0) if identity else None
        rec_a = outputs.pop(0) if w.cycle_a > 0 else None
        terms = {"gan_ab": losses.generator_loss(self.discs[B](fake_b), self.gan),
                 "gan_ba": losses.generator_loss(self.discs[A](fake_a), self.gan)}
        if rec_a is not None:
            terms["cycle_a"] = F.l1_loss(rec_a, real_a)
        if w.cycle_b > 0:
            terms["cycle_b"] = F.l1_loss(self.gen_ab(fake_a), real_b)
        if identity:
            terms["identity_a"] = F.l1_loss(idt_a, real_a)
            terms["identity_b"] = F.l1_loss(idt_b[0], real_b)
        return terms, fake_a, fake_b

    def _discriminator_terms(self, reals: list[Tensor], fakes: list[Tensor]) -> dict[str, Tensor]:
        w = self.cfg.loss
        terms = {}
        for d, name in ((A, "a"), (B, "b")):
            pred_real, pred_fake = self._calls(self.discs[d], [reals[d], fakes[d]])
            real_term, fake_term = losses.discriminator_terms(pred_real, pred_fake, self.gan)
            terms[f"d_{name}"] = 0.5 * (real_term + fake_term)
            if w.gan == "wgangp" and w.gp_weight > 0:
                terms[f"d_{name}_penalty"] = losses.wgan_gp_penalty(self.discs[d], reals[d], fakes[d])
        return terms

    def step(self, reals: list[Tensor], phase: Phase, images_seen: int) -> dict[str, float] | None:
        """One update of both generators, then of both discriminators; None when skipped."""
        ctx, w = self.ctx, self.cfg.loss
        real_a, real_b = reals
        lr = self.learning_rate(images_seen)
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr

        self.discs.requires_grad_(False)
        with ctx.autocast():
            g_terms, fake_a, fake_b = self._generator_terms(real_a, real_b)
            weights = {"gan_ab": 1.0, "gan_ba": 1.0, "cycle_a": w.cycle_a, "cycle_b": w.cycle_b,
                       "identity_a": w.cycle_a * w.identity, "identity_b": w.cycle_b * w.identity}
            g_total = sum(weights[k] * v for k, v in g_terms.items())
        g_values = ctx.finite(g_terms)
        self.discs.requires_grad_(True)
        if g_values is None:
            return None
        ctx.update(g_total, self.opt_g, self.gens, self.scaler_g)

        fakes = [self.pools[A].query(fake_a), self.pools[B].query(fake_b)]
        with ctx.autocast():
            d_terms = self._discriminator_terms([real_a, real_b], fakes)
            d_total = sum(v * (w.gp_weight if k.endswith("_penalty") else 1.0) for k, v in d_terms.items())
        d_values = ctx.finite(d_terms)
        if d_values is None:
            return None
        ctx.update(d_total, self.opt_d, self.discs, self.scaler_d)
        return {**g_values, **d_values}

    # ----------------------------------------------------------------- outputs and state
    def progress_note(self, phase: Phase, images_seen: int, values: dict[str, float]) -> str:
        t = self.cfg.train
        epoch = min(images_seen // self.epoch_images + 1, t.epochs + t.decay_epochs)
        cycle = values.get("cycle_a", 0.0) + values.get("cycle_b", 0.0)
        return (f"epoch {epoch}/{t.epochs + t.decay_epochs} lr={self.learning_rate(images_seen):.1e} "
                f"G={values['gan_ab'] + values['gan_ba']:.3f} D={values['d_a'] + values['d_b']:.3f} cyc={cycle:.3f}")

    @torch.no_grad()
    def sample_rows(self, inputs: list[Tensor], phase: Phase, images_seen: int) -> list[Tensor]:
        """Per domain: real, translated, translated back (the cycle), with the generators in eval mode."""
        res = phase.resolution
        self.gens.eval()
        try:
            rows = []
            for d in (A, B):
                real = F.interpolate(inputs[d], size=(res, res), mode="area") if res != inputs[d].shape[-1] \
                    else inputs[d]
                translated = self.gens[d](real)
                rows += [real, translated, self.gens[1 - d](translated)]
        finally:
            self.gens.train()
        return rows

    def sync_buffers(self) -> None:
        distributed.average_buffers(self.gens, self.ctx.dist)
        distributed.average_buffers(self.discs, self.ctx.dist)

    def state_dict(self) -> dict:
        return {"gens": self.gens.state_dict(), "discs": self.discs.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
                "pools": [pool.state_dict() for pool in self.pools]}

    def init_from(self, weights: dict[str, Tensor], source_cfg: CycleGANConfig, images_seen: int,
                  source: str) -> list[str]:
        """Fine-tune: both generators start from `source`'s (fully convolutional, so any training
        size fits); the critics and image pools start new, with no warm-up (CycleGAN's recipe has
        none). Nothing is left new."""
        try:
            self.gens.load_state_dict(weights)
        except (RuntimeError, KeyError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise UserError(f"{source} does not fit this run's generators ({detail})") from None
        return []

    def load_state_dict(self, state: dict) -> None:
        """Raises KeyError/RuntimeError/ValueError when the state is not this configuration's."""
        self.gens.load_state_dict(state["gens"])
        self.discs.load_state_dict(state["discs"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        keep_fused(self.opt_g)
        keep_fused(self.opt_d)
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        for pool, saved in zip(self.pools, state["pools"]):
            pool.load_state_dict(saved, self.ctx.device)
