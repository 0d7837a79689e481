"""A domain critic on the shared encoder's output (loss.link_adversarial; DRIT's content critic).

Twin-GAN's generator copies a photo's look into its anime output through the UNet links: the
links and the 4 x 4 latent carry what makes a photo a photo (shading, skin texture), and the
anime-domain norms cannot take it out. DRIT (Lee et al. 2018, HsinYingLee/DRIT `src/model.py`)
makes its content codes domain-free with a small critic that tells the two domains' codes apart
while the encoder is trained to leave it at one half. Here one head per feature level (the latent
and every link) does the same, so that what reaches the generator says where things are, not
which domain drew them. Written here: DRIT's critic is not packaged, and it is a few layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from twingan.domains import DOMAIN_B, DOMAINS


class LinkCritic(nn.Module):
    """One small convolutional head per feature level; each gives one domain logit per picture.

    `channels` maps each level's key (its side in pixels; 4 is the latent) to its channel count,
    as networks.encoder_channels gives it.
    """

    def __init__(self, channels: dict[int, int]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({
            str(hw): nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2),
                                   nn.Conv2d(c, c, 3, padding=1, stride=2 if hw > 4 else 1), nn.LeakyReLU(0.2),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1))
            for hw, c in channels.items()})

    def forward(self, levels: dict[int, Tensor]) -> Tensor:
        """Logits of shape (N, levels present): a positive logit says domain b (anime)."""
        return torch.cat([self.heads[str(hw)](levels[hw]).float() for hw in sorted(levels)], dim=1)


def _domain_loss(critic: LinkCritic, levels: list[dict[int, Tensor]], target: list[float]) -> Tensor:
    """BCE of each domain's features against that domain's target probability of anime, summed."""
    total = 0.0
    for d in DOMAINS:
        logits = critic(levels[d])
        total = total + F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target[d]))
    return total


def critic_loss(critic: LinkCritic, levels: list[dict[int, Tensor]]) -> Tensor:
    """The critic's term: each domain's features (detached) labelled with their own domain."""
    detached = [{hw: x.detach() for hw, x in domain.items()} for domain in levels]
    return _domain_loss(critic, detached, [float(d == DOMAIN_B) for d in DOMAINS])


def encoder_loss(critic: LinkCritic, levels: list[dict[int, Tensor]]) -> Tensor:
    """The encoder's term: both domains' features should leave the critic at one half (DRIT's
    target of 0.5, rather than the flipped label, which would only swap the two domains' codes)."""
    return _domain_loss(critic, levels, [0.5, 0.5])
