"""Character codes: the vector that makes an anime output look like one particular character.

The code c of an anime picture conditions the anime domain's norms (gamma = 1 + FC(c),
beta = FC(c), see networks.DomainNorm2d). Two sources:

* learned: `CharacterEncoder`, a small CNN trained alongside the GAN on the anime pictures alone.
  Its own objective is contrastive (two random crops and flips of one picture must get the same
  code, other pictures other codes); since crops and flips leave colours alone, colours and
  coarse shapes (hair and eye colour, hair style) are what the code keeps. It needs no weights
  from anywhere, so it is the default.
* illust2vec: `TagCode`, the probabilities that the frozen illust2vec tagger gives a chosen set
  of tags (hair colours, eye colours, ...); readable and settable by name (`--tags`), but it needs
  the user's converted illust2vec weights.

Either way, training asks a translated picture to carry the code it was given
(`code_consistency`): the code extractor looks at the translation and must find the target code.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from twingan.errors import UserError

CODE_INPUT_SIZE = 32
"""The learned encoder looks at pictures at 32 px: colours and coarse shapes, not detail."""
TEMPERATURE = 0.1
"""Softmax temperature of the contrastive loss (SimCLR's usual value)."""


class CharacterEncoder(nn.Module):
    """Anime picture in [-1, 1] at any size -> character code (unnormalised; the norms normalise it)."""

    def __init__(self, dim: int, channels: int = 32, image_channels: int = 3) -> None:
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(image_channels, c, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 4 * c, 3, 1, 1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(4 * c, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, size=(CODE_INPUT_SIZE, CODE_INPUT_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)
        return self.head(self.features(x).mean(dim=(2, 3)))


def _crop_and_flip(x: Tensor) -> Tensor:
    import kornia.augmentation as K  # training only: translation starts faster without kornia

    augment = nn.Sequential(K.RandomResizedCrop(tuple(x.shape[-2:]), scale=(0.5, 1.0)),
                            K.RandomHorizontalFlip())
    return augment(x)


def contrastive_loss(encoder: nn.Module, x: Tensor) -> Tensor:
    """NT-Xent between two crops-and-flips of each picture in both directions; 0 for one picture."""
    z1 = F.normalize(encoder(_crop_and_flip(x)), dim=1)
    z2 = F.normalize(encoder(_crop_and_flip(x)), dim=1)
    logits = z1 @ z2.T / TEMPERATURE
    labels = torch.arange(x.shape[0], device=x.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def code_consistency(found: Tensor, target: Tensor, source: str) -> Tensor:
    """How far the code found in a translation is from the one it was given: cosine distance for
    learned codes (only their direction matters to the norms), cross-entropy for tag probabilities."""
    if source == "illust2vec":
        with torch.autocast(found.device.type, enabled=False):
            return F.binary_cross_entropy(found.float().clamp(1e-6, 1 - 1e-6), target.float())
    return (1.0 - F.cosine_similarity(found, target, dim=1)).mean()


class TagCode(nn.Module):
    """illust2vec source: picture in [-1, 1] -> the frozen tagger's probabilities of `tags`."""

    def __init__(self, net: nn.Module, tags: list[str]) -> None:
        from illust2vec import tag_indices

        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.tags = list(tags)
        try:
            self.register_buffer("index", torch.tensor(tag_indices(self.tags)), persistent=False)
        except KeyError as exc:
            raise UserError(f"model.character_tags: {exc.args[0]}") from None

    def train(self, mode: bool = True) -> TagCode:
        """The tagger stays in eval mode whatever its owner does."""
        return self

    def forward(self, x: Tensor) -> Tensor:
        from illust2vec import network_input

        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.net(network_input((rgb + 1.0) / 2.0))[:, self.index]


def load_tag_code(weights: str | Path | None, tags: list[str], device: torch.device) -> TagCode:
    """The illust2vec source for `tags`, from a converted tag-model file."""
    from illust2vec import Illust2Vec

    if not weights:
        raise UserError("model.character=illust2vec needs model.illust2vec_weights: the illust2vec tag model "
                        "converted with `illust2vec convert`")
    tagger = Illust2Vec.load(weights, device)
    if tagger.variant != "tag":
        raise UserError(f"illust2vec weights {weights} are the feature model; the character code needs the tag model "
                        "(illust2vec_tag_ver200)")
    return TagCode(tagger.net, tags).to(device)
