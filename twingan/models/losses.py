"""GAN objectives and gradient penalties, as small functions of logits and a critic.

Kept free of any model so that the same functions serve Twin-GAN's four adversarial terms
(translation and reconstruction, both domains) and CycleGAN's (whose vanilla and wgangp losses
are the nonsaturating and wgan kinds here), and can be unit-tested on toy critics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Critic = Callable[[torch.Tensor], torch.Tensor]


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """What the generator minimises for pictures the discriminator scored `fake_logits`."""
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "lsgan":
        return (fake_logits - 1).square().mean()
    if kind == "wgan":
        return -fake_logits.mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def discriminator_terms(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                        kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's two halves, real pictures up and generated ones down, unweighted:
    recipes weigh them their own way (CycleGAN's reference halves their sum for every kind)."""
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean(), F.relu(1 + fake_logits).mean()
    if kind == "lsgan":
        return (real_logits - 1).square().mean(), fake_logits.square().mean()
    if kind == "wgan":
        return -real_logits.mean(), fake_logits.mean()
    raise ValueError(f"unknown GAN loss {kind!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """What the discriminator minimises; least squares halves the sum, as LSGAN's paper does."""
    real, fake = discriminator_terms(real_logits, fake_logits, kind)
    return 0.5 * (real + fake) if kind == "lsgan" else real + fake


def _input_gradient(critic: Critic, points: torch.Tensor, per_picture: str = "mean") -> torch.Tensor:
    """Gradient of each picture's score with respect to the picture.

    A patch critic gives each picture many scores; the GAN losses average them, so DRAGAN and R1
    constrain the slope of that average (`per_picture="mean"`; a one-score critic is unchanged).
    Differentiating their sum instead, as a first version did, asked each of the 128 scores of
    a 64 px patch critic for about 1/128 of the slope: the critic could no longer tell photos
    from anime (its loss stayed at chance for a whole 25-minute run). WGAN-GP keeps the sum
    (`per_picture="sum"`), as the public CycleGAN code does.
    """
    points = points.detach().requires_grad_(True)
    with torch.autocast(device_type=points.device.type, enabled=False):
        scores = critic(points.float()).reshape(points.shape[0], -1)
    per = scores.mean(1) if per_picture == "mean" else scores.sum(1)
    (grad,) = torch.autograd.grad(per.sum(), points, create_graph=True)
    return grad.flatten(1)


def dragan_penalty(critic: Critic, real: torch.Tensor) -> torch.Tensor:
    """DRAGAN (Kodali et al. 2017): unit gradient norm on points near the real data.

    Points are drawn between each real picture and a copy perturbed by uniform noise of half
    the batch's standard deviation, as the published Twin-GAN recipe did.
    """
    noise = 0.5 * real.detach().std() * torch.rand_like(real)
    mix = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    grad = _input_gradient(critic, real + mix * noise)
    return (grad.norm(dim=1) - 1).square().mean()


def r1_penalty(critic: Critic, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): half the squared gradient norm on real pictures."""
    grad = _input_gradient(critic, real)
    return 0.5 * grad.square().sum(dim=1).mean()


def gradient_penalty(kind: str, critic: Critic, real: torch.Tensor) -> torch.Tensor:
    """The configured penalty, or a zero that still carries the device and dtype."""
    if kind == "dragan":
        return dragan_penalty(critic, real)
    if kind == "r1":
        return r1_penalty(critic, real)
    if kind == "none":
        return real.new_zeros(())
    raise ValueError(f"unknown gradient penalty {kind!r}")


def wgan_gp_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): unit gradient norm on random real/fake interpolations.

    Patch critics give a grid of scores; their sum is differentiated, as the public CycleGAN code does.
    """
    mix = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    grad = _input_gradient(critic, torch.lerp(real.detach(), fake.detach(), mix), per_picture="sum")
    return (grad.norm(dim=1) - 1).square().mean()
