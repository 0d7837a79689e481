"""PatchNCE (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image Translation").

A content term that does not reward copying pixels: the shared encoder looks at a translation
and at its source, and each sampled position of the translation's features must pick out the
same position of the source among the other positions of that picture (InfoNCE, temperature
0.07). Reconstruction L1 and the 4x4 latent L1, the original Twin-GAN's only content terms, are
lowest when the output repeats the input; PatchNCE only asks that each patch stays
recognisably the patch it came from, so colours, texture and proportions are free to change.

Written here rather than taken from a library: CUT's code is not packaged, and the term is a few
lines once the features exist; Twin-GAN already re-encodes every translation (semantic loss), so
the features come at no extra network pass. As in CUT, the source side is detached and both sides
go through the same small MLP per feature level, which is trained with the generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TEMPERATURE = 0.07
"""CUT's nce_T."""
LATENT = 4
"""Key of the 4 x 4 latent among the feature levels (the encoder skips are keyed by their size),
as in networks.encoder_channels."""


class PatchNCE(nn.Module):
    """One two-layer MLP projection per feature level; `forward` is the loss.

    `channels` maps each level's key (its side in pixels) to its channel count.
    """

    def __init__(self, channels: dict[int, int], dim: int = 64) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({str(hw): nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim))
                                    for hw, c in channels.items()})

    def forward(self, translated: dict[int, Tensor], source: dict[int, Tensor], patches: int) -> Tensor:
        """Mean InfoNCE over the levels both feature sets hold; the source side gets no gradient."""
        levels = sorted(translated.keys() & source.keys())
        if not levels:
            raise ValueError("PatchNCE needs at least one feature level present in both sets")
        total = translated[levels[0]].new_zeros((), dtype=torch.float32)
        for hw in levels:
            query, key = translated[hw], source[hw].detach()
            n, _, h, w = query.shape
            count = min(patches, h * w)
            where = torch.randperm(h * w, device=query.device)[:count]
            head = self.heads[str(hw)]
            q = F.normalize(head(query.flatten(2)[:, :, where].transpose(1, 2).float()), dim=-1)
            k = F.normalize(head(key.flatten(2)[:, :, where].transpose(1, 2).float()), dim=-1).detach()
            logits = q @ k.transpose(1, 2) / TEMPERATURE  # (n, count, count): the diagonal is the positive
            target = torch.arange(count, device=query.device).repeat(n)
            total = total + F.cross_entropy(logits.reshape(n * count, count), target)
        return total / len(levels)


def feature_levels(latent: Tensor, skips: dict[int, Tensor]) -> dict[int, Tensor]:
    """The encoder's output for one picture set as PatchNCE levels: the latent and every link."""
    return {LATENT: latent, **skips}
