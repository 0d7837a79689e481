"""Twin-GAN's part of a training step: networks, losses, optimisers, EMA, progressive schedule.

Per step, both domains: encode each real picture with its own domain's norm set, generate it
back (reconstruction) and across (translation), re-encode the translations (semantic
consistency, optional cycle), update the shared encoder/generator, then update the two
discriminators on the same, detached fakes (one generator pass per step, as CycleGAN does).
Progressive growing is a pure function of images seen (see twingan/models/schedule.py), so a checkpoint only
has to remember counts, weights and optimizer moments to continue exactly.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import record_function

from twingan import distributed
from twingan.config import Config, LossConfig, ModelConfig, RunConfig
from twingan.domains import DOMAIN_A, DOMAIN_B, DOMAINS
from twingan.errors import ConfigError, UserError
from twingan.models import losses
from twingan.models.diff_augment import diff_augment
from twingan.models.protocols import TrainingData
from twingan.models.schedule import Phase, build_phases, lr_factor
from twingan.models.stepping import StepContext, adam, keep_fused
from twingan.models.twingan.character import code_consistency, contrastive_loss, load_tag_code
from twingan.models.twingan.inference import reached_resolution
from twingan.models.twingan.link_critic import LinkCritic, critic_loss, encoder_loss
from twingan.models.twingan.networks import (Discriminator, DomainNorm2d, SkipGate, TwinGAN, check_model_config,
                                             encoder_channels, residual_at, upsample_bilinear)
from twingan.models.twingan.patch_nce import PatchNCE, feature_levels

log = logging.getLogger(__name__)

TRANSLATION_GAN = ("translation_gan_a", "translation_gan_b")
"""The generator's GAN term on translations into each domain, logged and weighted apart."""
D_TRANSLATION = ("d_translation_a", "d_translation_b")
"""Each critic's loss on translations into its domain."""


def translation_weights(w: LossConfig) -> tuple[float, float]:
    """Weight of the translation GAN terms into domain a and into domain b."""
    into_a = w.translation_gan if w.translation_gan_a is None else w.translation_gan_a
    return into_a, w.translation_gan


def fade_reals(x: Tensor, alpha: float, residual: bool = False) -> Tensor:
    """Blend real pictures with their half-resolution version while a new resolution fades in,
    upsampled as the generator upsamples its own lower picture at that size: nearest for PGGAN's
    replacing blocks, bilinear for residual ones (model.residual_from). Otherwise the fading reals
    would be blocky where the fakes are smooth, and the new block would learn to add the blocks."""
    if alpha >= 1.0:
        return x
    pooled = F.avg_pool2d(x, 2)
    coarse = upsample_bilinear(pooled) if residual else F.interpolate(pooled, scale_factor=2, mode="nearest")
    return alpha * x + (1.0 - alpha) * coarse


def domain_switch_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The per-domain norm scales and shifts (and LIN mixes), the only parameters that tell the
    domains apart, the per-domain link gates, and the character FCs that shift the norms per
    character: all O(1) modulations that learn far more slowly than the conv weights at one shared
    lr. (With the FCs at the shared lr a 32 px run's outputs followed the reference's colour 44% of
    the time, against 69% with them here.)"""
    return [p for m in net.modules() if isinstance(m, (DomainNorm2d, SkipGate)) for p in m.parameters()]


def layer_resolution(name: str) -> int | None:
    """The picture size an encoder or generator tensor works at (the larger side of its block), read
    from its name: encoder.blocks.128.* takes 128 px in, generator.to_rgb.64.* draws 64 px; None for
    tensors outside the two networks' per-size layers."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] in ("encoder", "generator") and parts[1] in ("blocks", "from_rgb", "to_rgb"):
        return int(parts[2])
    return 4 if parts[:2] == ["generator", "block4"] else None


def layer_lr_factor(name: str, multipliers: dict[int, float]) -> float:
    """train.layer_lr_multipliers for one named tensor: the factor of the smallest key at or above its size."""
    size = layer_resolution(name)
    keys = [key for key in sorted(multipliers) if size is not None and key >= size]
    return multipliers[keys[0]] if keys else 1.0


MAY_DIFFER_WHEN_GROWN = {"resolution", "min_channels", "unet_max_resolution", "illust2vec_weights",
                         "discriminator", "patch_scale", "discriminator_width", "mbstd_group_size", "spectral_norm"}
"""Model keys a run may set apart from the model it grows from (--init-from): the size, what only
the new top blocks' shapes depend on (the tensors' shapes are checked one by one), and the
critics, which start new anyway. Every other key changes what the trained layers compute."""


def _below(model: ModelConfig, name: str, resolution: int) -> object:
    """A model key's effect on the layers up to `resolution`: translation_link_max_resolution 0
    means "as unet_max_resolution", and any limit at or above `resolution` leaves them alike;
    residual_from above `resolution` changes only the blocks above it."""
    if name == "translation_link_max_resolution":
        return min(model.translation_link_max_resolution or model.unet_max_resolution, resolution)
    if name == "residual_from":
        return model.residual_from if model.residual_from <= resolution else 0
    return getattr(model, name)


def check_config(cfg: Config) -> list[Phase]:
    """The rules between keys a Twin-GAN config must meet, checked where it is loaded (`twingan
    config`, `twingan train`) and again by the recipe; returns the schedule's phases. Raises
    ConfigError naming the key."""
    try:
        check_model_config(cfg.model)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        phases = build_phases(cfg.train.start_resolution, cfg.model.resolution, cfg.train.phase_images,
                              cfg.train.final_phase_images)
    except ValueError as exc:
        raise ConfigError(f"schedule: {exc} (model.resolution, train.start_resolution)") from None
    missing = sorted({p.resolution for p in phases} - set(cfg.train.batch_size))
    if missing:
        raise ConfigError(f"train.batch_size has no entry for resolution(s) {missing}")
    odd = [key for key in cfg.train.layer_lr_multipliers
           if key < 4 or key > cfg.model.resolution or key & (key - 1)]
    if odd:
        raise ConfigError(f"train.layer_lr_multipliers: {odd} are not layer sizes of this model (powers of two "
                          f"from 4 to model.resolution {cfg.model.resolution})")
    return phases


class TwinGANRecipe:
    """Everything model-specific the generic training loop asks of Twin-GAN (protocols.Recipe).

    Its schedule counts images, not epochs, so of the data it reads only the channels.
    """

    def __init__(self, cfg: Config, ctx: StepContext, data: TrainingData) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.image_channels = data.image_channels
        self.phases = check_config(cfg)
        self.net = TwinGAN(cfg.model, data.image_channels).to(ctx.device, memory_format=ctx.memory_format)
        self.discs = nn.ModuleList(Discriminator(cfg.model, data.image_channels) for _ in DOMAINS)
        self.discs.to(ctx.device, memory_format=ctx.critic_memory_format)
        distributed.broadcast_parameters(self.net, ctx.dist)
        distributed.broadcast_parameters(self.discs, ctx.dist)
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.source = cfg.model.character
        self.tag_code = (load_tag_code(cfg.model.illust2vec_weights, cfg.model.character_tags, ctx.device)
                         if self.source == "illust2vec" else None)
        settings = {"lr": cfg.train.lr, "betas": (cfg.train.beta1, cfg.train.beta2), "eps": cfg.train.eps}
        switch_ids = {id(p) for p in domain_switch_parameters(self.net)}
        apart = set(switch_ids)
        if self.source == "learned":
            self.opt_c = adam(self.net.character.parameters(), ctx.device, **settings)
            self.scaler_c = ctx.grad_scaler()
            apart |= {id(p) for p in self.net.character.parameters()}
        rest = [(name, p) for name, p in self.net.named_parameters() if id(p) not in apart]
        self.nce = PatchNCE(encoder_channels(cfg.model)).to(ctx.device) if cfg.loss.nce > 0 else None
        if self.nce is not None:
            distributed.broadcast_parameters(self.nce, ctx.dist)
            rest += [(f"nce.{name}", p) for name, p in self.nce.named_parameters()]
        self.generator_side = nn.ModuleList([self.net, *([self.nce] if self.nce is not None else [])])
        self.link_critic = (LinkCritic(encoder_channels(cfg.model)).to(ctx.device)
                            if cfg.loss.link_adversarial > 0 else None)
        if self.link_critic is not None:
            distributed.broadcast_parameters(self.link_critic, ctx.dist)
        self.critic_side = nn.ModuleList([self.discs, *([self.link_critic] if self.link_critic is not None else [])])
        self.generator_tensors = rest + [(name, p) for name, p in self.net.named_parameters() if id(p) in switch_ids]
        self.switch_ids = switch_ids
        groups = self._generator_groups(cfg.train.layer_lr_multipliers)
        self.opt_g = adam([{"params": params} for params, _ in groups], ctx.device, **settings)
        self.g_lr_factors = [factor for _, factor in groups]
        self.opt_d = adam(self.critic_side.parameters(), ctx.device, **settings)
        self._set_learning_rates(0)
        self.scaler_g, self.scaler_d = ctx.grad_scaler(), ctx.grad_scaler()

    def _generator_groups(self, multipliers: dict[int, float]) -> list[tuple[list[nn.Parameter], float]]:
        """Adam's groups for the generator side with each one's factor on train.lr: the shared-rate
        tensors and the domain switch (domain_switch_lr_multiplier), each split by the layer factors
        (train.layer_lr_multipliers). Without layer factors these are the two groups of checkpoints
        written before them, in their order, so those still resume. (The factors live beside the
        optimiser: a loaded state dict replaces its groups' entries.)"""
        groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
        for name, p in self.generator_tensors:
            groups.setdefault((id(p) in self.switch_ids, layer_lr_factor(name, multipliers)), []).append(p)
        order = sorted(groups, key=lambda key: (-key[1], key[0]))
        switch = self.cfg.train.domain_switch_lr_multiplier
        return [(groups[key], key[1] * (switch if key[0] else 1.0)) for key in order]

    def _regrouped(self, saved: dict, saved_multipliers: dict[int, float]) -> dict:
        """A generator optimiser state saved under other train.layer_lr_multipliers, regrouped for
        this run's: Adam's moments belong to each tensor, so a run may change its layer factors
        when it resumes (unfreeze the trained layers in a later stretch) and keep them."""
        saved_order = [id(p) for params, _ in self._generator_groups(saved_multipliers) for p in params]
        position = {tensor: index for index, tensor in enumerate(saved_order)}
        state, groups, start = {}, [], 0
        for group in self.opt_g.param_groups:
            for index, p in enumerate(group["params"], start):
                if position[id(p)] in saved["state"]:
                    state[index] = saved["state"][position[id(p)]]
            groups.append({**saved["param_groups"][0], "params": list(range(start, start + len(group["params"])))})
            start += len(group["params"])
        return {"state": state, "param_groups": groups}

    def batch_size(self, phase: Phase) -> int:
        return self.cfg.train.batch_size[phase.resolution]

    def learning_rate(self, images_seen: int) -> float:
        t = self.cfg.train
        return t.lr * lr_factor(images_seen, t.lr_decay_start, t.lr_decay_images)

    def _set_learning_rates(self, images_seen: int) -> None:
        """Every group's rate for this step, the one place the multipliers apply: taken from the config
        rather than the optimiser's state, so a resumed run with another train.lr or decay takes it."""
        t = self.cfg.train
        lr = self.learning_rate(images_seen)
        for group, factor in zip(self.opt_g.param_groups, self.g_lr_factors):
            group["lr"] = lr * factor
        self.opt_d.param_groups[0]["lr"] = lr * t.discriminator_lr_multiplier
        if self.source == "learned":
            self.opt_c.param_groups[0]["lr"] = lr

    # ----------------------------------------------------------------- one step
    def _character_code(self, anime: Tensor, net: nn.Module) -> Tensor:
        return self.tag_code(anime) if self.source == "illust2vec" else net.character(anime)

    def _character_step(self, anime: Tensor) -> dict[str, float] | None:
        """Learned source: one contrastive update of the character encoder; None when skipped."""
        with self.ctx.autocast():
            loss = contrastive_loss(self.net.character, anime)
        values = self.ctx.finite({"character_contrastive": loss})
        if values is not None:
            self.ctx.update(loss * self.cfg.loss.character_contrastive, self.opt_c, self.net.character, self.scaler_c)
            self.opt_c.zero_grad(set_to_none=True)  # or the generator update would all-reduce them again
        return values

    def _generator_pass(self, reals: list[Tensor], res: int,
                        alpha: float) -> tuple[dict[str, Tensor], dict[str, list[Tensor]], list]:
        """All generator-side terms, plus what the D step reuses: the critics' scores of the
        translations and reconstructions (see `step`) and the encoder outputs.

        With a character source, anime reconstruction is conditioned on the picture's own code and
        photo -> anime on the code of another anime picture of the batch, which the translation
        must then carry (the character term)."""
        enc, gen, w = self.net.encoder, self.net.generator, self.cfg.loss
        own = target = None
        if self.source != "none":
            with torch.no_grad():
                own = self._character_code(reals[DOMAIN_B], self.net)
                self.net.character_mean.lerp_(own.float().mean(0), 0.01)
            target = own.roll(1, 0)
        conditions = {"recon": [None, own], "trans": [None, target]}
        codes = [enc(reals[d], d, res, alpha) for d in DOMAINS]
        recon = [gen(*codes[d], d, res, alpha, conditions["recon"][d], source=d) for d in DOMAINS]
        trans = [gen(*codes[1 - d], d, res, alpha, conditions["trans"][d], source=1 - d) for d in DOMAINS]
        recodes = [enc(trans[d], d, res, alpha) for d in DOMAINS]
        terms = {
            "reconstruction": sum(F.l1_loss(recon[d], reals[d]) for d in DOMAINS),
            "semantic": sum(F.l1_loss(recodes[d][0], codes[1 - d][0]) for d in DOMAINS),
        }
        scores = {"trans": [self._critic(d, trans[d], res, alpha) for d in DOMAINS]}
        for d in DOMAINS:
            terms[TRANSLATION_GAN[d]] = losses.generator_loss(scores["trans"][d], w.gan)
        terms["translation_gan"] = sum(terms[TRANSLATION_GAN[d]] for d in DOMAINS)
        if target is not None and w.character > 0:
            found = self._character_code(trans[DOMAIN_B], self.net)
            terms["character"] = code_consistency(found, target, self.source)
            with torch.no_grad():  # the same distance to another picture's code: what "not carried" looks like
                terms["character_mismatch"] = code_consistency(found, target.roll(1, 0), self.source)
        levels = [feature_levels(*codes[d]) for d in DOMAINS]
        if self.nce is not None:
            terms["nce"] = sum(self.nce(feature_levels(*recodes[d]), levels[1 - d], w.nce_patches) for d in DOMAINS)
        if self.link_critic is not None:
            terms["link_adversarial"] = encoder_loss(self.link_critic, levels)
        if w.cycle > 0:
            terms["cycle"] = sum(F.l1_loss(gen(*recodes[d], 1 - d, res, alpha, conditions["recon"][1 - d], source=d),
                                           reals[1 - d]) for d in DOMAINS)
        if self._reconstruction_gan_on(res):
            scores["recon"] = [self._critic(d, recon[d], res, alpha) for d in DOMAINS]
            terms["reconstruction_gan"] = sum(losses.generator_loss(scores["recon"][d], w.gan) for d in DOMAINS)
        return terms, scores, levels

    def _critic(self, domain: int, pictures: Tensor, resolution: int, alpha: float) -> Tensor:
        """Domain `domain`'s critic on `pictures`, through loss.diffaugment when it is on: every
        critic call goes here, so real and generated pictures meet the same augmentation. The
        gradient penalty too, as DiffAugment's StyleGAN2 code takes R1 through it: its gradient is
        the critic's with respect to the pictures before augmentation (a blanked square gets none)."""
        return self.discs[domain](diff_augment(pictures, self.cfg.loss.diffaugment), resolution, alpha)

    def _reconstruction_gan_on(self, res: int) -> bool:
        return self.cfg.loss.reconstruction_gan > 0 and res >= self.cfg.loss.reconstruction_gan_min_resolution

    def _penalised(self, images_seen: int, batch_images: int) -> bool:
        """Whether this discriminator step takes the gradient penalty: every `penalty_every`-th
        step, counted from the images seen so that a resumed run penalises the same steps."""
        w = self.cfg.loss
        return w.penalty != "none" and w.penalty_weight > 0 and (images_seen // batch_images) % w.penalty_every == 0

    def _discriminator_terms(self, reals: list[Tensor], scores: dict[str, list[Tensor]], levels: list[dict],
                             res: int, alpha: float, penalised: bool) -> dict[str, Tensor]:
        w = self.cfg.loss
        terms: dict[str, Tensor] = {"d_translation": 0, "d_reconstruction": 0, "d_penalty": 0}
        if self.link_critic is not None:
            terms["d_link"] = critic_loss(self.link_critic, levels)
        for d in DOMAINS:
            real_logits = self._critic(d, reals[d], res, alpha)
            terms[D_TRANSLATION[d]] = losses.discriminator_loss(real_logits, scores["trans"][d], w.gan)
            terms["d_translation"] += terms[D_TRANSLATION[d]]
            if self._reconstruction_gan_on(res):
                terms["d_reconstruction"] += losses.discriminator_loss(real_logits, scores["recon"][d], w.gan)
            if penalised:
                judge = functools.partial(self._critic, d, resolution=res, alpha=alpha)
                terms["d_penalty"] += losses.gradient_penalty(w.penalty, judge, reals[d])
        return {k: v for k, v in terms.items() if isinstance(v, Tensor)}

    def step(self, reals: list[Tensor], phase: Phase, images_seen: int) -> dict[str, float] | None:
        """One generator and one discriminator update on [-1, 1] batches; None when skipped."""
        ctx, w = self.ctx, self.cfg.loss
        res, alpha = phase.resolution, phase.alpha(images_seen)
        direction_weights = translation_weights(w)
        weights = {"reconstruction": w.reconstruction, "semantic": w.semantic, "cycle": w.cycle,
                   "reconstruction_gan": w.reconstruction_gan, "character": w.character, "nce": w.nce,
                   "link_adversarial": w.link_adversarial,
                   **{TRANSLATION_GAN[d]: direction_weights[d] for d in DOMAINS}}
        reals = [fade_reals(x, alpha, residual_at(self.cfg.model.residual_from, res)) for x in reals]
        self._set_learning_rates(images_seen)
        c_values: dict[str, float] = {}
        if self.source == "learned" and w.character_contrastive > 0 and not self.holds_generator(images_seen):
            c_values = self._character_step(reals[DOMAIN_B])
            if c_values is None:
                return None

        # The critics score the translations and reconstructions once, in the generator pass, and
        # the D step reuses those scores: its critics are the same weights (not yet updated) on the
        # same pictures, so a second forward would compute the same numbers. Each backward is
        # restricted to its own side's parameters (`inputs`), so the generator's backward computes
        # no critic weight gradients and the critics' backward stops at the pictures, which is
        # what detaching them did. (With model.spectral_norm the D step sees the power iteration
        # of the generator pass's forward instead of one more.)
        holding = self.holds_generator(images_seen)
        frozen = [*([self.link_critic] if self.link_critic is not None else []),
                  *([self.net.character] if self.source == "learned" else []),
                  *([self.net] if holding else [])]
        for module in frozen:
            module.requires_grad_(False)
        with ctx.autocast(), record_function("generator forward"):
            g_terms, scores, levels = self._generator_pass(reals, res, alpha)
            g_total = sum(weights[k] * v for k, v in g_terms.items() if k in weights)
        g_values = ctx.finite(g_terms)
        for module in frozen:
            module.requires_grad_(True)
        if g_values is None:
            return None
        if not holding:
            ctx.update(g_total, self.opt_g, self.generator_side, self.scaler_g, "generator", keep_graph=True)
            with record_function("EMA"):
                self.update_ema(reals[0].shape[0] * ctx.dist.world_size, images_seen)
        elif self.nce is not None:
            # PatchNCE's projection heads are judges, like the critics: a run grown from a bundled
            # model starts them new, and heads that first learn when the generator does hand it a
            # loss of ~3.6 (against ~0.2 trained) that reshapes the trained encoder towards copying
            # the photo (docs/quality.md, 128 px campaign). So they learn on the held encoder here.
            ctx.update(weights["nce"] * g_terms["nce"], self.opt_g, self.nce, self.scaler_g, "PatchNCE heads")

        d_weights = {"d_reconstruction": w.reconstruction_gan, "d_penalty": w.penalty_weight * w.penalty_every,
                     "d_link": 1.0,
                     **{D_TRANSLATION[d]: direction_weights[d] for d in DOMAINS}}
        penalised = self._penalised(images_seen, reals[0].shape[0] * ctx.dist.world_size)
        with ctx.autocast(), record_function("critic forward"):
            d_terms = self._discriminator_terms(reals, scores, levels, res, alpha, penalised)
            d_total = sum(d_weights[k] * v for k, v in d_terms.items() if k in d_weights)
        d_values = ctx.finite(d_terms)
        if d_values is None:
            return None
        ctx.update(d_total, self.opt_d, self.critic_side, self.scaler_d, "critic")
        return {**c_values, **g_values, **d_values}

    def holds_generator(self, images_seen: int) -> bool:
        """Whether the step leaves the encoder, generator and their EMA as they are and trains the
        judges only: the critics and PatchNCE's heads (train.generator_warmup_images). Its pass then
        builds no generator graph."""
        return images_seen < self.cfg.train.generator_warmup_images

    @torch.no_grad()
    def update_ema(self, batch_images: int, images_seen: int) -> None:
        """Weights follow an exponential average with a half-life in images (so the batch size
        does not change its meaning); batch-norm statistics are copied as they are."""
        half_life = float(self.cfg.train.ema_half_life)
        if self.cfg.train.ema_rampup is not None:
            half_life = min(half_life, images_seen * self.cfg.train.ema_rampup)
        keep = 0.5 ** (batch_images / max(half_life, 1e-8))
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.net.parameters()), 1.0 - keep)
        buffers = list(self.ema.buffers())
        if buffers:  # none with model.norm=instance or layer_instance
            torch._foreach_copy_(buffers, list(self.net.buffers()))

    # ----------------------------------------------------------------- outputs and state
    def progress_note(self, phase: Phase, images_seen: int, values: dict[str, float]) -> str:
        held = " critics warming up" if self.holds_generator(images_seen) else ""
        note = f"{phase.name}{held} a={phase.alpha(images_seen):.2f} rec={values['reconstruction']:.3f}"
        return note + (f" chr={values['character']:.3f}" if "character" in values else "")

    @torch.no_grad()
    def sample_rows(self, inputs: list[Tensor], phase: Phase, images_seen: int) -> list[Tensor]:
        """Per domain: real, translated, reconstructed, by the EMA networks, at the phase's size.
        Photo -> anime uses the mean character code (what `translate` does without a reference),
        anime reconstruction the picture's own."""
        res, alpha = phase.resolution, phase.alpha(images_seen)
        rows = []
        for d in DOMAINS:
            real = F.interpolate(inputs[d], size=(res, res), mode="area") if res < inputs[d].shape[-1] else inputs[d]
            latent, skips = self.ema.encoder(real, d, res, alpha)
            mean = own = None
            if self.source != "none":
                mean = self.ema.character_mean.expand(real.shape[0], -1) if d == DOMAIN_A else None
                own = self._character_code(real, self.ema) if d == DOMAIN_B else None
            rows += [real, self.ema.generator(latent, skips, 1 - d, res, alpha, mean, source=d),
                     self.ema.generator(latent, skips, d, res, alpha, own, source=d)]
        return rows

    def sync_buffers(self) -> None:
        distributed.average_buffers(self.net, self.ctx.dist)
        distributed.average_buffers(self.ema, self.ctx.dist)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_g, self.opt_d, *([self.opt_c] if self.source == "learned" else [])]

    def state_dict(self) -> dict:
        state = {"net": self.net.state_dict(), "ema": self.ema.state_dict(), "discs": self.discs.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "layer_lr_multipliers": dict(self.cfg.train.layer_lr_multipliers),
                 "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict()}
        if self.nce is not None:
            state["nce"] = self.nce.state_dict()
        if self.link_critic is not None:
            state["link_critic"] = self.link_critic.state_dict()
        if self.source == "learned":
            state |= {"opt_c": self.opt_c.state_dict(), "scaler_c": self.scaler_c.state_dict()}
        return state

    def init_from(self, weights: dict[str, Tensor], source_cfg: RunConfig, images_seen: int,
                  source: str) -> list[str]:
        """Start the encoder and generator (and their EMA) from a trained model: every tensor of
        that model loads into the network of the same name, and what this run's larger networks
        have beyond it (the blocks above its resolution) keeps its fresh initialisation and fades
        in above the trained layers, as progressive growing does. The critics stay new (a bundled
        model has none): train.generator_warmup_images lets them learn before the generator moves.
        Returns the names of the new tensors; raises UserError for a model this run cannot grow
        from, naming what differs."""
        resolution, final = source_cfg.model.resolution, self.cfg.model.resolution
        start = self.cfg.train.start_resolution
        reached = reached_resolution(source_cfg, images_seen)
        if reached < resolution:
            raise UserError(f"{source} stopped growing at {reached} px, before its final {resolution} px: its "
                            "upper layers are untrained; --init-from takes a model that finished growing")
        if resolution > final:
            raise UserError(f"{source} is a {resolution} px model, larger than this run's model.resolution "
                            f"{final}: --init-from grows a model, it does not shrink one")
        if start > resolution:
            raise UserError(f"train.start_resolution {start} is above the {resolution} px of {source}: the new blocks "
                            f"would start at full weight instead of fading in; set train.start_resolution={resolution}")
        differ = [f"model.{name}={getattr(source_cfg.model, name)!r} (this run: {getattr(self.cfg.model, name)!r})"
                  for name in (f.name for f in dataclasses.fields(self.cfg.model))
                  if name not in MAY_DIFFER_WHEN_GROWN
                  and _below(source_cfg.model, name, resolution) != _below(self.cfg.model, name, resolution)]
        if differ:
            raise UserError(f"{source} was trained with other model settings: {'; '.join(differ[:3])}")
        try:
            with torch.device("meta"):
                residual = _below(self.cfg.model, "residual_from", resolution)
                smaller = TwinGAN(dataclasses.replace(self.cfg.model, resolution=resolution, residual_from=residual),
                                  self.image_channels).state_dict()
        except ValueError as exc:
            raise UserError(f"{source}: this run's model settings do not fit a {resolution} px model ({exc})") from None
        target = self.net.state_dict()
        for key in sorted(set(smaller) | set(weights)):
            if key not in weights or key not in smaller:
                raise UserError(f"{source} does not fit this run's networks: tensor {key} is "
                                f"{'missing from it' if key not in weights else 'not in this config'}")
            if tuple(weights[key].shape) != tuple(target[key].shape):
                raise UserError(f"{source} does not fit this run's networks: tensor {key} has shape "
                                f"{tuple(weights[key].shape)}, this config's is {tuple(target[key].shape)}")
        self.net.load_state_dict(weights, strict=False)
        self.ema.load_state_dict(self.net.state_dict())
        if start < resolution:
            log.warning("train.start_resolution %d is below the %d px of %s: the run grows again from %d px over the "
                        "trained layers; train.start_resolution=%d trains them as they are", start, resolution,
                        source, start, resolution)
        if not self.cfg.train.generator_warmup_images:
            log.warning("the critics start new and train.generator_warmup_images is 0: their first verdicts will "
                        "move the trained generator (2000 lets them learn first)")
        return [key for key in target if key not in weights]

    def load_state_dict(self, state: dict) -> None:
        """Raises KeyError/RuntimeError when the state is not this configuration's."""
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        self.discs.load_state_dict(state["discs"])
        saved_multipliers = state.get("layer_lr_multipliers", {})
        if saved_multipliers != self.cfg.train.layer_lr_multipliers:
            self.opt_g.load_state_dict(self._regrouped(state["opt_g"], saved_multipliers))
        else:
            self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        if self.nce is not None:
            self.nce.load_state_dict(state["nce"])
        if self.link_critic is not None:
            self.link_critic.load_state_dict(state["link_critic"])
        if self.source == "learned":
            self.opt_c.load_state_dict(state["opt_c"])
            self.scaler_c.load_state_dict(state["scaler_c"])
        for optimizer in self.optimizers():
            keep_fused(optimizer)
