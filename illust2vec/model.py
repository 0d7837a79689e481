"""The illust2vec API: tags and features for pictures, with the original preprocessing.

    from illust2vec import Illust2Vec
    tagger = Illust2Vec.load("illust2vec_tag_ver200.safetensors")
    tagger.tags([Image.open("miku.png")], top_k=5)    # [{"general": [("twintails", 0.98), ...], ...}]
    tagger.tags(pictures, threshold=0.25)              # every tag above 0.25 (rating: all three)
    Illust2Vec.load("illust2vec_ver200.safetensors").features(pictures)   # (N, 4096)

Preprocessing follows the reference implementation: grey pictures become three equal channels,
alpha is dropped, the picture is squashed to 224x224 with bilinear interpolation and no
anti-aliasing (caffe.io.resize_image), turned to BGR in 0..255 and the training mean is
subtracted. `network_input` does the same to a tensor differentiably, so a generator can be
trained through the tagger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from illust2vec.convert import load_weights
from illust2vec.network import INPUT_SIZE, Illust2VecNet
from illust2vec.tags import CATEGORIES, tag_list
from illust2vec.errors import Illust2VecError

MEAN_BGR = (164.76139251, 167.47864617, 181.13838569)
WEIGHTS_HELP = ("illust2vec needs its published weights, which are not shipped: download "
                "illust2vec_tag_ver200.caffemodel (tags) or illust2vec_ver200.caffemodel (features) from "
                "the releases of github.com/rezoo/illustration2vec, then run "
                "`illust2vec convert illust2vec_tag_ver200.caffemodel -o illust2vec_tag_ver200.safetensors`")


def picture_tensor(image: Image.Image) -> Tensor:
    """A PIL picture -> RGB CHW float in [0, 1] (grey repeated, alpha dropped, as the original)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def network_input(x: Tensor) -> Tensor:
    """RGB NCHW in [0, 1] at any size -> the network's 224 px BGR, mean-subtracted input."""
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    mean = torch.tensor(MEAN_BGR, device=x.device, dtype=x.dtype)[None, :, None, None]
    return x.flip(1) * 255.0 - mean


class Illust2Vec:
    """A loaded illust2vec network (tag or feature model) on one device, in eval mode."""

    def __init__(self, net: Illust2VecNet, device: str | torch.device = "cpu") -> None:
        self.net = net.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)

    @property
    def variant(self) -> str:
        return self.net.variant

    @classmethod
    def load(cls, weights: str | Path, device: str | torch.device = "cpu") -> Illust2Vec:
        """Load a file written by `illust2vec convert`; a missing or foreign file is an Illust2VecError."""
        path = Path(weights)
        if not path.is_file():
            raise Illust2VecError(f"illust2vec weights {path} not found. {WEIGHTS_HELP}")
        try:
            variant, width, state = load_weights(path)
            net = Illust2VecNet(variant, width)
            net.load_state_dict(state)
        except Illust2VecError as exc:  # not safetensors, truncated, or a pickle that would run code
            raise Illust2VecError(f"{exc}. {WEIGHTS_HELP}") from None
        except (ValueError, RuntimeError, OSError) as exc:
            raise Illust2VecError(f"illust2vec weights {path} cannot be used: {str(exc).splitlines()[0][:200]}. "
                                  f"{WEIGHTS_HELP}") from None
        return cls(net, device)

    def _run(self, images: list[Image.Image] | Tensor, variant: str) -> Tensor:
        if self.variant != variant:
            raise Illust2VecError(f"this is the illust2vec {self.variant} model; this needs the {variant} model. "
                                  f"{WEIGHTS_HELP}")
        if isinstance(images, Tensor):
            x = network_input(images.to(self.device, torch.float32))
        else:
            x = torch.cat([network_input(picture_tensor(im)[None].to(self.device)) for im in images])
        with torch.no_grad():
            return self.net(x)

    def probabilities(self, images: list[Image.Image] | Tensor) -> Tensor:
        """(N, 1539) tag probabilities, in tag-list order (tag model). Tensors: RGB NCHW in [0, 1]."""
        return self._run(images, "tag")

    def features(self, images: list[Image.Image] | Tensor) -> Tensor:
        """(N, 4096) encode1 features (feature model)."""
        return self._run(images, "feature")

    def tags(self, images: list[Image.Image] | Tensor, top_k: int | None = 10,
             threshold: float | None = None) -> list[dict[str, list[tuple[str, float]]]]:
        """Per picture and category (general, character, copyright, rating): (tag, probability),
        most likely first; the top `top_k`, or, with `threshold`, every tag above it (the rating
        category always lists its three tags, as the original does)."""
        names = tag_list()
        results = []
        for row in self.probabilities(images).cpu():
            entry = {}
            for category, span in CATEGORIES.items():
                values = row[span]
                order = torch.argsort(values, descending=True, stable=True).tolist()
                pairs = [(names[span.start + i], float(values[i])) for i in order]
                if category != "rating":
                    pairs = [p for p in pairs if p[1] > threshold] if threshold is not None else pairs[:top_k]
                entry[category] = pairs
            results.append(entry)
        return results
