"""Image-set metrics: KID, FID and IS on Inception features, multi-scale SWD, PSNR and SSIM.

KID, FID and IS use torchmetrics' implementations on features this module extracts once per
picture set (so three metrics cost one Inception pass). The Inception network is the one the
usual FID tools use (torch-fidelity's port of the 2015 TF graph, `pt_inception-2015-12-05-6726825d.pth`),
loaded from a file the user gives: nothing is downloaded. SWD (PGGAN's multi-scale sliced
Wasserstein distance on Laplacian-pyramid patches) has no offline library implementation and
is written here; PSNR and SSIM are kornia's.

SWD normalises each set's patch statistics, so it is blind to a global colour cast, contrast and
softness: `colour_distance` (Lab pixel histograms) and `detail_ratio` (finest-band energy) see
exactly those.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from twingan.data.pictures import to_unit_range
from twingan.errors import UserError
from twingan.weights import code_loading_refused, load_weights

WEIGHTS_ENV = "TWINGAN_INCEPTION_WEIGHTS"
WEIGHTS_HELP = ("KID, FID and IS need the Inception weights the usual FID tools use "
                "(pt_inception-2015-12-05-6726825d.pth, from the torch-fidelity / pytorch-fid releases): "
                f"give the file with --inception-weights or the {WEIGHTS_ENV} environment variable")


def check_weights(path: str | Path) -> None:
    """The safe loader's verdict on an Inception weights file, with where to get the right one."""
    try:
        load_weights(path, "Inception weights", formats=("torch",), mmap=True)
    except UserError as exc:
        raise UserError(f"{exc}. {WEIGHTS_HELP}") from None


class _Given(nn.Module):
    """Hands torchmetrics features that are already computed (its `feature` may be any module)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x


class InceptionFeatures:
    """Pool (2048-d) features and unbiased logits of pictures, from a local weights file."""

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        weights = weights or os.environ.get(WEIGHTS_ENV)
        if not weights:
            raise UserError(WEIGHTS_HELP)
        if not Path(weights).exists():
            raise UserError(f"Inception weights {weights} not found. {WEIGHTS_HELP}")
        # torch-fidelity reads the file itself with weights_only=False: it is checked with the safe
        # loader first (a clear refusal), and the library's own read is forced to be safe as well.
        check_weights(weights)
        from torchmetrics.image.fid import NoTrainInceptionV3

        try:
            with code_loading_refused():
                self.net = NoTrainInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], str(weights))
        except Exception as exc:  # torch-fidelity raises whatever its loader raises on a wrong file
            raise UserError(f"Inception weights {weights} cannot be used ({str(exc).splitlines()[0][:200]}). "
                            f"{WEIGHTS_HELP}") from None
        self.net = self.net.to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, pictures: Tensor, batch_size: int = 50) -> tuple[Tensor, Tensor]:
        """NCHW in [0, 1] -> (pool features (N, 2048), logits (N, 1008)), float64 on the CPU."""
        pools, logits = [], []
        for start in range(0, len(pictures), batch_size):
            batch = (pictures[start:start + batch_size].clamp(0, 1) * 255).to(torch.uint8).to(self.device)
            pool, logit = self.net(batch)
            pools.append(pool.double().cpu())
            logits.append(logit.double().cpu())
        return torch.cat(pools), torch.cat(logits)


def fid(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between two feature sets (torchmetrics)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Given(real.shape[1])).set_dtype(torch.float64)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kid(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception distance, mean and std over random subsets (torchmetrics); the subset
    size shrinks to the smaller set, so 100-picture test sets work."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # "will save all extracted features": these are the features
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """Inception score of a set from its unbiased logits (torchmetrics)."""
    from torchmetrics.image.inception import InceptionScore

    with warnings.catch_warnings(), torch.random.fork_rng():  # buffer notice; std of one split
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=_Given(logits.shape[1]), splits=min(splits, len(logits)))
        metric.update(logits)
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


# ----------------------------------------------------------------- SWD (PGGAN)
def _descriptors(level: Tensor, per_picture: int, size: int, generator: torch.Generator) -> Tensor:
    """Random size x size patches of every picture, flattened; pictures smaller than `size` (a run
    stopped at 4 px) give patches of their own size."""
    n, c, h, w = level.shape
    size = min(size, h, w)
    ys = torch.randint(0, h - size + 1, (n, per_picture), generator=generator)
    xs = torch.randint(0, w - size + 1, (n, per_picture), generator=generator)
    offsets = torch.arange(size)
    rows = (ys[..., None] + offsets)[..., :, None].expand(-1, -1, size, size)
    cols = (xs[..., None] + offsets)[..., None, :].expand(-1, -1, size, size)
    index = torch.arange(n)[:, None, None, None].expand_as(rows)
    patches = level.permute(0, 2, 3, 1)[index, rows, cols]  # (n, per_picture, size, size, c)
    return patches.permute(0, 1, 4, 2, 3).reshape(n * per_picture, c * size * size)


def _normalise(descriptors: Tensor) -> Tensor:
    """Per-dimension zero mean, unit std, as PGGAN does before slicing."""
    return (descriptors - descriptors.mean(0)) / descriptors.std(0).clamp_min(1e-8)


def _sliced_wasserstein(a: Tensor, b: Tensor, directions: int, repeats: int, generator: torch.Generator) -> float:
    total = 0.0
    for _ in range(repeats):
        projection = torch.randn(a.shape[1], directions, generator=generator, dtype=a.dtype)
        projection /= projection.norm(dim=0, keepdim=True)
        pa, pb = (a @ projection).sort(0).values, (b @ projection).sort(0).values
        total += float((pa - pb).abs().mean())
    return total / repeats


def swd(real: Tensor, fake: Tensor, min_resolution: int = 16, patches: int = 128, patch_size: int = 7,
        directions: int = 128, repeats: int = 4, seed: int = 0) -> list[float]:
    """Sliced Wasserstein distance at every Laplacian pyramid level (finest first) between two
    picture sets (NCHW in [-1, 1], same size): PGGAN's multi-scale statistical similarity."""
    from kornia.geometry.transform import build_laplacian_pyramid

    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"picture sets differ in shape: {tuple(real.shape[1:])} and {tuple(fake.shape[1:])}")
    levels = max(1, real.shape[-1].bit_length() - min_resolution.bit_length() + 1)
    generator = torch.Generator().manual_seed(seed)
    pyramids = [build_laplacian_pyramid(x.double(), levels) for x in (real, fake)]
    distances = []
    for level_real, level_fake in zip(*pyramids):
        a = _normalise(_descriptors(level_real, patches, patch_size, generator))
        b = _normalise(_descriptors(level_fake, patches, patch_size, generator))
        count = min(len(a), len(b))
        distances.append(_sliced_wasserstein(a[:count], b[:count], directions, repeats, generator))
    return distances


# ----------------------------------------------------------------- colour and detail
COLOUR_QUANTILES = 1024
"""Points of each channel's inverse CDF the colour distance compares: fine enough that the
distance is stable to a few hundredths of a Lab unit at 300 pictures."""


def colour_distance(real: Tensor, fake: Tensor) -> float:
    """Mean over the CIE Lab channels of the 1-D Wasserstein distance between the two sets' pixel
    histograms (NCHW RGB in [-1, 1]; Lab units: L in 0..100, a and b about -100..100).

    Unlike SWD it sees what every pixel looks like, not patch structure: a green cast, washed-out
    contrast or violet blotches move it; 0 means the same colour distribution. Sets may differ in
    size and resolution. W1 in 1-D is the mean gap between the two inverse CDFs, read here at
    COLOUR_QUANTILES evenly spaced levels."""
    from kornia.color import rgb_to_lab

    if real.shape[1] != 3 or fake.shape[1] != 3:
        raise ValueError("colour_distance needs RGB pictures")
    levels = torch.linspace(0, 1, COLOUR_QUANTILES, dtype=torch.float64)
    curves = []
    for pictures in (real, fake):
        lab = rgb_to_lab(to_unit_range(pictures.float())).transpose(0, 1).flatten(1).double()
        values = lab.sort(dim=1).values
        curves.append(values[:, (levels * (values.shape[1] - 1)).round().long()])
    return float((curves[0] - curves[1]).abs().mean())


def fine_energy(pictures: Tensor) -> float:
    """Mean squared value of the finest Laplacian band (the picture minus its blurred half-size
    copy): the energy of edges, line art and noise."""
    from kornia.geometry.transform import build_laplacian_pyramid

    return float(build_laplacian_pyramid(pictures.double(), 2)[0].pow(2).mean())


def detail_ratio(real: Tensor, fake: Tensor) -> float:
    """Fine-band energy of `fake` over that of `real`: 1 is the target domain's sharpness, below 1
    softer (smears), above 1 noisier (speckle, checkerboard)."""
    return fine_energy(fake) / max(fine_energy(real), 1e-12)


# ----------------------------------------------------------------- pairs
def psnr_ssim(x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM (11 px Gaussian window) of pairs of pictures in [0, 1] (kornia)."""
    from kornia.metrics import psnr, ssim

    x, y = x.clamp(0, 1).double(), y.clamp(0, 1).double()
    per_picture = torch.stack([psnr(a, b, 1.0) for a, b in zip(x, y)])
    window = min(11, (min(x.shape[-2:]) - 1) | 1)  # odd and smaller than the picture (a run stopped at 4 px)
    return float(per_picture.mean()), float(ssim(x, y, window).mean())
