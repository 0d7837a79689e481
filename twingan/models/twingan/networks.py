"""Twin-GAN networks: one shared encoder/generator pair plus one discriminator per domain.

Every layer is shared by both domains except the normalisation, which keeps one set of
(gamma, beta, running mean, running variance) per domain; the domain index picks the set. All
three networks grow progressively (PGGAN): `resolution` picks the active blocks and `alpha` blends
the newest block in (at 4 px there is nothing to fade from, so alpha is ignored there). Each
module keeps blocks for every resolution up to cfg.resolution so that a checkpoint's state_dict has
the same keys at every phase.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from twingan.config import ModelConfig
from twingan.domains import DOMAIN_B, NUM_DOMAINS
from twingan.models.twingan.character import CharacterEncoder


def num_channels(cfg: ModelConfig, hw: int) -> int:
    """Feature channels of the block working at hw x hw (halved per doubling, capped and floored)."""
    stage = int(math.log2(hw)) - 2
    return max(min(cfg.channel_base // 2**stage, cfg.max_channels), cfg.min_channels)


def _is_pow2(n: int) -> bool:
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def check_model_config(cfg: ModelConfig) -> None:
    """Fail at construction rather than deep inside a forward with an opaque shape error."""
    if not _is_pow2(cfg.resolution) or cfg.resolution < 8:
        raise ValueError(f"model.resolution must be a power of two >= 8, got {cfg.resolution}")
    if num_channels(cfg, cfg.resolution) < 1:
        raise ValueError(
            f"model.channel_base={cfg.channel_base} leaves no channels at {cfg.resolution} px; "
            f"it must be at least {2 ** (int(math.log2(cfg.resolution)) - 2)}"
        )
    if cfg.max_channels < 1:
        raise ValueError(f"model.max_channels must be positive, got {cfg.max_channels}")
    if cfg.min_channels > cfg.max_channels:
        raise ValueError(f"model.min_channels ({cfg.min_channels}) is above model.max_channels ({cfg.max_channels})")
    if not 0.0 < cfg.bn_momentum <= 1.0:
        raise ValueError(f"model.bn_momentum must be in (0, 1], got {cfg.bn_momentum}")
    if cfg.mbstd_group_size < 1:
        raise ValueError(f"model.mbstd_group_size must be positive, got {cfg.mbstd_group_size}")
    if cfg.condition_dim < 0:
        raise ValueError(f"model.condition_dim must be >= 0, got {cfg.condition_dim}")
    if cfg.character == "learned" and cfg.condition_dim == 0:
        raise ValueError("model.character=learned needs model.condition_dim, the code length (16 is a good start)")
    if cfg.trunk_blocks and cfg.trunk_resolution not in _resolutions(cfg.resolution):
        raise ValueError(f"model.trunk_resolution must be a power of two from 8 to model.resolution "
                         f"({cfg.resolution}), got {cfg.trunk_resolution}")
    if cfg.skip_highpass_from and cfg.skip_highpass_from not in _resolutions(cfg.resolution):
        raise ValueError(f"model.skip_highpass_from must be 0 (off) or a power of two from 8 to model.resolution "
                         f"({cfg.resolution}), got {cfg.skip_highpass_from}")
    if cfg.residual_from and cfg.residual_from not in _resolutions(cfg.resolution):
        raise ValueError(f"model.residual_from must be 0 (off) or a power of two from 8 to model.resolution "
                         f"({cfg.resolution}), got {cfg.residual_from}")
    limit = cfg.translation_link_max_resolution
    if limit and limit not in [4, *_resolutions(cfg.resolution)]:
        raise ValueError(f"model.translation_link_max_resolution must be 0 (off) or a power of two from 4 to "
                         f"model.resolution ({cfg.resolution}), got {limit}")
    if cfg.character == "illust2vec" and not cfg.character_tags:
        raise ValueError("model.character=illust2vec needs at least one tag in model.character_tags")


def _check_phase(resolution: int, alpha: float, max_resolution: int) -> None:
    if not _is_pow2(resolution) or not 4 <= resolution <= max_resolution:
        raise ValueError(f"resolution must be a power of two in [4, {max_resolution}], got {resolution}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def _resolutions(top: int) -> list[int]:
    """8, 16, ..., top: the resolutions that own a down/up-sampling block."""
    return [2**k for k in range(3, int(math.log2(top)) + 1)]


def upsample_bilinear(picture: Tensor) -> Tensor:
    """Twice the side, bilinear: the base a residual block (model.residual_from) draws its detail
    on; nearest would leave it 2 x 2 blocks to undo."""
    return F.interpolate(picture, scale_factor=2, mode="bilinear", align_corners=False)


def residual_at(residual_from: int, size: int) -> bool:
    """Whether the block of this size adds to the size below (model.residual_from; 0: none does)."""
    return bool(residual_from) and size >= residual_from


def _blend(new: Tensor, old: Tensor, alpha: float) -> Tensor:
    """Written as a weighted sum (not lerp) so alpha = 0 returns `old` bit for bit."""
    return new if alpha == 1.0 else alpha * new + (1.0 - alpha) * old


def pixel_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-pixel feature normalisation (PGGAN); keeps generator magnitudes from escalating.

    Autocast runs pow/rsqrt in fp32; casting the factor back keeps activations in half precision.
    """
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps).to(x.dtype)


def _init_std(equalized: bool, init: str, he: float) -> float:
    if equalized:
        return 1.0
    return {"original": 0.02, "he": he}[init]


class Conv2d(nn.Module):
    """Conv with optional equalized learning rate.

    Equalized lr stores N(0, 1) weights and applies the He constant at run time, so Adam's
    normalised steps change every layer at the same relative rate regardless of fan-in. Otherwise
    the weights are stored as they act: N(0, 0.02) as in the original, or He-scaled (N(0, 0.02)
    shrinks the signal through the normalisation-free discriminators: after five layers of 64
    channels almost nothing is left to learn from). Spectral norm, when wrapped around `weight`,
    normalises the stored weight and the He constant still multiplies it: the layer's Lipschitz
    bound becomes a fixed constant, which is what spectral norm is there to guarantee.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, padding: int = 0, *, equalized: bool,
                 init: str = "original", gain: float = math.sqrt(2)) -> None:
        super().__init__()
        self.padding = padding
        he = gain / math.sqrt(c_in * kernel * kernel)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) * _init_std(equalized, init, he))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = he if equalized else 1.0

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight * self.scale if self.scale != 1.0 else self.weight
        return F.conv2d(x, weight, self.bias, padding=self.padding)


class Linear(nn.Module):
    """Fully connected counterpart of `Conv2d` (same init and equalized-lr rule)."""

    def __init__(self, c_in: int, c_out: int, *, equalized: bool, init: str = "original", gain: float = 1.0) -> None:
        super().__init__()
        he = gain / math.sqrt(c_in)
        self.weight = nn.Parameter(torch.randn(c_out, c_in) * _init_std(equalized, init, he))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = he if equalized else 1.0

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight * self.scale if self.scale != 1.0 else self.weight
        return F.linear(x, weight, self.bias)


class DomainNorm2d(nn.Module):
    """Normalisation with one full set of affine parameters (and statistics) per domain: the switch.

    `kind` picks what the switch can do (model.norm):
    - batch: the original's batch norm, one nn.BatchNorm2d per domain (plain children, so
      the state_dict keys stay those of every checkpoint so far). Its scale/shift act on batch
      statistics, so a picture's own contrast and colour survive normalisation and reach the
      other domain's output (Dumoulin et al. switch styles with conditional *instance* norm).
    - instance: instance norm, then the domain's scale and shift (conditional instance norm):
      each picture's own statistics are removed and the target domain's are put in their place.
    - layer_instance: U-GAT-IT's LIN, a per-domain, per-channel mix rho of instance and layer norm
      (their ablation on selfie2anime ranked it first), then the domain's scale and shift.
    Instance and LIN behave the same in training and inference (no running statistics).

    `momentum` follows PyTorch's convention (running = (1 - m) * running + m * batch), so the
    original's TF decay 0.99 is m = 0.01. The optional condition modulates the already
    domain-normalised features per sample; its FCs start at zero so a fresh model ignores c and
    conditioning can be switched on for a model trained without it.
    """

    def __init__(self, num_features: int, num_domains: int = NUM_DOMAINS, momentum: float = 0.01,
                 condition_dim: int = 0, kind: str = "batch") -> None:
        super().__init__()
        self.kind = kind
        self.num_domains = num_domains
        if kind == "batch":
            self.norms = nn.ModuleList(nn.BatchNorm2d(num_features, momentum=momentum) for _ in range(num_domains))
        elif kind in ("instance", "layer_instance"):
            self.weight = nn.Parameter(torch.ones(num_domains, num_features))
            self.bias = nn.Parameter(torch.zeros(num_domains, num_features))
            if kind == "layer_instance":
                self.rho = nn.Parameter(torch.full((num_domains, num_features), 0.9))  # U-GAT-IT's start
        else:
            raise ValueError(f"unknown normalisation {kind!r}")
        self.condition_dim = condition_dim
        if condition_dim > 0:
            self.fc_gamma = nn.Linear(condition_dim, num_features)
            self.fc_beta = nn.Linear(condition_dim, num_features)
            for fc in (self.fc_gamma, self.fc_beta):
                nn.init.zeros_(fc.weight)
                nn.init.zeros_(fc.bias)

    def _normalise(self, x: Tensor, domain: int) -> Tensor:
        if self.kind == "batch":
            return self.norms[domain](x)
        # Statistics in fp32 under autocast; the result keeps x's dtype.
        xf = x.float()
        h = F.instance_norm(xf)
        if self.kind == "layer_instance":
            rho = self.rho[domain].clamp(0.0, 1.0)[None, :, None, None]
            h = rho * h + (1.0 - rho) * F.layer_norm(xf, xf.shape[1:])
        h = h * self.weight[domain][None, :, None, None] + self.bias[domain][None, :, None, None]
        return h.to(x.dtype)

    def forward(self, x: Tensor, domain: int, condition: Tensor | None = None) -> Tensor:
        if not 0 <= domain < self.num_domains:
            raise ValueError(f"domain must be in [0, {self.num_domains}), got {domain}")
        x = self._normalise(x, domain)
        if condition is None:
            return x
        if self.condition_dim == 0:
            raise ValueError("a condition was given but this model has model.condition_dim = 0")
        if condition.shape != (x.shape[0], self.condition_dim):
            raise ValueError(f"condition must have shape ({x.shape[0]}, {self.condition_dim}), "
                             f"got {tuple(condition.shape)}")
        c = F.normalize(condition, dim=1)
        gamma = 1.0 + self.fc_gamma(c)
        beta = self.fc_beta(c)
        return x * gamma[:, :, None, None] + beta[:, :, None, None]


class ConvUnit(nn.Module):
    """conv -> domain norm -> LeakyReLU(0.2) -> pixel norm: the encoder/generator layer."""

    def __init__(self, cfg: ModelConfig, c_in: int, c_out: int, kernel: int = 3, condition_dim: int = 0) -> None:
        super().__init__()
        self.conv = Conv2d(c_in, c_out, kernel, kernel // 2, equalized=cfg.equalized_lr, init=cfg.weight_init)
        self.norm = DomainNorm2d(c_out, momentum=cfg.bn_momentum, condition_dim=condition_dim, kind=cfg.norm)

    def forward(self, x: Tensor, domain: int, condition: Tensor | None = None) -> Tensor:
        return pixel_norm(F.leaky_relu(self.norm(self.conv(x), domain, condition), 0.2))


class _DownBlock(nn.Module):
    """Encoder block at hw: conv3x3 (same channels), conv3x3 (to hw/2's channels); pooling is the caller's."""

    def __init__(self, cfg: ModelConfig, hw: int) -> None:
        super().__init__()
        self.conv0 = ConvUnit(cfg, num_channels(cfg, hw), num_channels(cfg, hw))
        self.conv1 = ConvUnit(cfg, num_channels(cfg, hw), num_channels(cfg, hw // 2))

    def forward(self, x: Tensor, domain: int) -> Tensor:
        return self.conv1(self.conv0(x, domain), domain)


class Encoder(nn.Module):
    """Image -> 4x4 latent plus the pre-pooling block outputs for the generator's UNet links.

    At 4 px the latent is from_rgb_4 of the image: like the PGGAN discriminator it mirrors, the
    encoder has no 4x4 block of its own (the generator's 4x4 block is the first to see the latent).

    Skip during fade-in at resolution r: skips[r] is the new block's output unscaled by alpha. The
    generator only consumes it in its own new block, whose rgb is already weighted by alpha, so the
    link's contribution and its gradient fade in exactly once; scaling it again would fade it in as
    alpha^2 and leave the generator's new block a skip whose magnitude drifts during the phase.
    Lower skips come from the blended features, as every later layer sees them.
    """

    def __init__(self, cfg: ModelConfig, image_channels: int = 3) -> None:
        super().__init__()
        check_model_config(cfg)
        self.max_resolution = cfg.resolution
        self.from_rgb = nn.ModuleDict(
            {str(hw): ConvUnit(cfg, image_channels, num_channels(cfg, hw), kernel=1)
             for hw in [4, *_resolutions(cfg.resolution)]}
        )
        self.blocks = nn.ModuleDict({str(hw): _DownBlock(cfg, hw) for hw in _resolutions(cfg.resolution)})
        self.residual_from = cfg.residual_from
        # model.residual_from: what a residual block adds passes a gate that starts closed, so a
        # block grown onto trained layers leaves their features as they were until it has learned.
        self.residual_gates = nn.ModuleDict({str(hw): SkipGate(num_channels(cfg, hw // 2))
                                             for hw in _resolutions(cfg.resolution)
                                             if residual_at(cfg.residual_from, hw)})

    def forward(self, x: Tensor, domain: int, resolution: int, alpha: float = 1.0) -> tuple[Tensor, dict[int, Tensor]]:
        _check_phase(resolution, alpha, self.max_resolution)
        skips: dict[int, Tensor] = {}
        h = self.from_rgb[str(resolution)](x, domain)
        hw = resolution
        while hw > 4:
            skips[hw] = self.blocks[str(hw)](h, domain)
            down = F.avg_pool2d(skips[hw], 2)
            weight = alpha if hw == resolution else 1.0
            if residual_at(self.residual_from, hw):  # add to the size below
                x = F.avg_pool2d(x, 2)
                added = self.residual_gates[str(hw)](down, domain)
                h = self.from_rgb[str(hw // 2)](x, domain) + (added if weight == 1.0 else weight * added)
            elif weight < 1.0:
                h = _blend(down, self.from_rgb[str(hw // 2)](F.avg_pool2d(x, 2), domain), weight)
            else:
                h = down
            hw //= 2
        return h, skips


class SkipGate(nn.Module):
    """Per-domain, per-channel scale on a UNet link, starting closed (model.skip_gate=gated).

    Full-resolution links let the generator copy the photo's layout, contrast and texture
    straight into the anime output (no strong selfie2anime model passes them: U-GAT-IT, MUNIT
    and CUT translate through a 1/4-resolution bottleneck). A gate at zero passes nothing, so
    training starts from the bottleneck alone and each output domain opens only the channels
    its discriminator lets through. The gradient reaching a closed gate is not zero (it is the
    skip times the next layer's weights), so it can open.
    """

    def __init__(self, channels: int, num_domains: int = NUM_DOMAINS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_domains, channels))

    def forward(self, skip: Tensor, domain: int) -> Tensor:
        return skip * self.weight[domain].to(skip.dtype)[None, :, None, None]


def high_pass(skip: Tensor) -> Tensor:
    """Each link value minus the mean of its 8 neighbours (StarGAN v2's 3x3 high-pass on its links).

    model.skip_highpass_from: a full-resolution link then carries where edges are, not the flat
    colour and shading between them, so the generator can keep a photo's outline but has to paint
    skin, hair and light in the target domain's way instead of copying them. kornia's
    unnormalised 3x3 Laplacian is the neighbour sum minus 8 times the centre; / -8 keeps an
    isolated value at its own size. Imported here, as in character.py: kornia costs about 0.3 s
    at start-up, which translating with a model without the switch should not pay.
    """
    import kornia.filters

    return kornia.filters.laplacian(skip, 3, border_type="reflect", normalized=False) / -8.0


def drop_links(skip: Tensor, probability: float) -> Tensor:
    """Zero the whole link of each picture with the given probability (model.skip_dropout).

    Drop-path style, without rescaling the links kept: the generator sees a link either as the
    encoder made it or not at all, and inference (every link present) is the first case, so a
    kept link in training and every link at inference have the same size. Dropping must make
    the generator paint the target domain from the coarser features where a link is missing;
    the hope is that it then takes only detail, not the whole picture, from the links.
    """
    keep = torch.rand(skip.shape[0], 1, 1, 1, device=skip.device) >= probability
    return skip * keep.to(skip.dtype)


def encoder_channels(cfg: ModelConfig) -> dict[int, int]:
    """Channels of every encoder output by its side: the 4 x 4 latent and each UNet link."""
    return {4: num_channels(cfg, 4), **{hw: num_channels(cfg, hw // 2) for hw in _resolutions(cfg.resolution)}}


class _ResidualUnit(nn.Module):
    """x + (conv unit, conv, domain norm) of x, then pixel norm: one block of the generator's trunk.

    The residual form lets a deep trunk start as the identity, so adding it does not cut the path
    the shallower generator already learns through; pixel norm after the sum keeps magnitudes from
    growing block by block, as everywhere else in this generator.
    """

    def __init__(self, cfg: ModelConfig, channels: int) -> None:
        super().__init__()
        self.conv0 = ConvUnit(cfg, channels, channels, condition_dim=cfg.code_dim)
        self.conv1 = Conv2d(channels, channels, 3, 1, equalized=cfg.equalized_lr, init=cfg.weight_init)
        self.norm1 = DomainNorm2d(channels, momentum=cfg.bn_momentum, condition_dim=cfg.code_dim, kind=cfg.norm)

    def forward(self, x: Tensor, domain: int, condition: Tensor | None) -> Tensor:
        h = self.norm1(self.conv1(self.conv0(x, domain, condition)), domain, condition)
        return pixel_norm(x + h)


class _UpBlock(nn.Module):
    """Generator block at hw: upsample, concatenate the (high-passed, dropped in training, gated)
    encoder skip when linked, two conv3x3, then the residual trunk when hw is model.trunk_resolution.
    A translation above model.translation_link_max_resolution gets zeros in the skip's place, so
    one set of weights serves reconstructions (with the link) and translations (without it)."""

    def __init__(self, cfg: ModelConfig, hw: int) -> None:
        super().__init__()
        self.linked = hw <= cfg.unet_max_resolution
        self.high_pass = self.linked and 0 < cfg.skip_highpass_from <= hw
        self.dropout = cfg.skip_dropout if self.linked else 0.0
        self.into_translations = not cfg.translation_link_max_resolution or hw <= cfg.translation_link_max_resolution
        c_in = num_channels(cfg, hw // 2) * (2 if self.linked else 1)
        self.gate = SkipGate(num_channels(cfg, hw // 2)) if self.linked and cfg.skip_gate == "gated" else None
        self.conv0 = ConvUnit(cfg, c_in, num_channels(cfg, hw), condition_dim=cfg.code_dim)
        self.conv1 = ConvUnit(cfg, num_channels(cfg, hw), num_channels(cfg, hw), condition_dim=cfg.code_dim)
        blocks = cfg.trunk_blocks if hw == cfg.trunk_resolution else 0
        self.trunk = nn.ModuleList(_ResidualUnit(cfg, num_channels(cfg, hw)) for _ in range(blocks))

    def forward(self, h: Tensor, skip: Tensor | None, domain: int, condition: Tensor | None,
                translating: bool) -> Tensor:
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        if self.linked and translating and not self.into_translations:
            h = torch.cat([h, torch.zeros_like(skip)], dim=1)
        elif self.linked:
            if self.high_pass:
                skip = high_pass(skip)
            if self.training and self.dropout:
                skip = drop_links(skip, self.dropout)
            h = torch.cat([h, skip if self.gate is None else self.gate(skip, domain)], dim=1)
        h = self.conv1(self.conv0(h, domain, condition), domain, condition)
        for unit in self.trunk:
            h = unit(h, domain, condition)
        return h


class Generator(nn.Module):
    """4x4 latent (+ encoder skips) -> image; the output is linear (no squashing), as in PGGAN."""

    def __init__(self, cfg: ModelConfig, image_channels: int = 3) -> None:
        super().__init__()
        check_model_config(cfg)
        self.max_resolution = cfg.resolution
        self.unet_max_resolution = cfg.unet_max_resolution
        self.residual_from = cfg.residual_from
        c4 = num_channels(cfg, 4)
        self.block4 = nn.ModuleList(
            [ConvUnit(cfg, c4, c4, condition_dim=cfg.code_dim) for _ in range(2)]
        )
        self.blocks = nn.ModuleDict({str(hw): _UpBlock(cfg, hw) for hw in _resolutions(cfg.resolution)})
        self.to_rgb = nn.ModuleDict(
            {str(hw): Conv2d(num_channels(cfg, hw), image_channels, 1, equalized=cfg.equalized_lr,
                             init=cfg.weight_init, gain=1.0)
             for hw in [4, *_resolutions(cfg.resolution)]}
        )
        for hw in _resolutions(cfg.resolution):
            if residual_at(cfg.residual_from, hw):  # a residual block starts by adding nothing
                nn.init.zeros_(self.to_rgb[str(hw)].weight)

    def forward(self, latent: Tensor, skips: dict[int, Tensor], domain: int, resolution: int,
                alpha: float = 1.0, condition: Tensor | None = None, *, source: int) -> Tensor:
        """`source` is the domain the latent and skips were encoded from: with
        model.translation_link_max_resolution a translation (source != domain) takes fewer links."""
        _check_phase(resolution, alpha, self.max_resolution)
        linked = [hw for hw in _resolutions(resolution) if hw <= self.unet_max_resolution]
        missing = [hw for hw in linked if hw not in skips]
        if missing:
            raise ValueError(f"generator at {resolution} px needs encoder skips at {missing}")
        if condition is not None and domain != DOMAIN_B:
            raise ValueError("the character condition shapes anime (domain B) output only")
        translating = source != domain
        residual = residual_at(self.residual_from, resolution)
        picture = None  # with model.residual_from: the picture of the size reached so far
        h = latent
        for unit in self.block4:
            h = unit(h, domain, condition)
        for hw in [4, *_resolutions(resolution // 2)]:
            if hw > 4:
                h = self.blocks[str(hw)](h, skips.get(hw), domain, condition, translating)
            if residual and hw >= self.residual_from // 2:
                rgb = self.to_rgb[str(hw)](h)
                picture = rgb if picture is None else upsample_bilinear(picture) + rgb
        if resolution == 4:
            return self.to_rgb["4"](h)
        top = self.blocks[str(resolution)](h, skips.get(resolution), domain, condition, translating)
        rgb = self.to_rgb[str(resolution)](top)
        if residual:
            return upsample_bilinear(picture) + (rgb if alpha == 1.0 else alpha * rgb)
        if alpha == 1.0:
            return rgb
        rgb_prev = F.interpolate(self.to_rgb[str(resolution // 2)](h), scale_factor=2, mode="nearest")
        return _blend(rgb, rgb_prev, alpha)


def minibatch_stddev(x: Tensor, group_size: int) -> Tensor:
    """Append the mean per-group feature stddev as a channel, so D can see a collapsed batch.

    The group shrinks to the largest divisor of the batch that fits, so odd last batches still work.
    """
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    y = x.float().reshape(g, n // g, c, h, w)
    std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))
    std = std.to(x.dtype).reshape(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
    return torch.cat([x, std], dim=1)


class Discriminator(nn.Module):
    """Per-domain critic: the encoder's layout without normalisation.

    model.discriminator=global ends in one logit per picture, as the original: shape (N,).
    model.discriminator=patch also scores every cell of a grid 1/patch_scale of the picture's side
    (at least 4 x 4; U-GAT-IT's local critic, CycleGAN's PatchGAN) with a 1x1 head on the features
    at that size. The global logit is repeated once per cell so that the mean the GAN losses take
    weighs the whole picture and its patches equally: shape (N, 2 * cells).
    """

    def __init__(self, cfg: ModelConfig, image_channels: int = 3) -> None:
        super().__init__()
        check_model_config(cfg)
        self.max_resolution = cfg.resolution
        self.group_size = cfg.mbstd_group_size
        self.patch_scale = cfg.patch_scale if cfg.discriminator == "patch" else None

        def width(hw: int) -> int:
            return num_channels(cfg, hw) * cfg.discriminator_width

        def conv(c_in: int, c_out: int, kernel: int, padding: int = 0) -> nn.Module:
            layer = Conv2d(c_in, c_out, kernel, padding, equalized=cfg.equalized_lr, init=cfg.weight_init)
            return spectral_norm(layer) if cfg.spectral_norm else layer

        def act_conv(c_in: int, c_out: int, kernel: int, padding: int = 0) -> nn.Sequential:
            return nn.Sequential(conv(c_in, c_out, kernel, padding), nn.LeakyReLU(0.2))

        self.from_rgb = nn.ModuleDict(
            {str(hw): act_conv(image_channels, width(hw), 1) for hw in [4, *_resolutions(cfg.resolution)]}
        )
        self.blocks = nn.ModuleDict(
            {str(hw): nn.Sequential(act_conv(width(hw), width(hw), 3, 1),
                                    act_conv(width(hw), width(hw // 2), 3, 1),
                                    nn.AvgPool2d(2))
             for hw in _resolutions(cfg.resolution)}
        )
        c4 = width(4)
        self.conv4 = act_conv(c4 + 1, c4, 3, 1)
        self.dense4 = act_conv(c4, c4, 4)
        out = Linear(c4, 1, equalized=cfg.equalized_lr, init=cfg.weight_init)
        self.out = spectral_norm(out) if cfg.spectral_norm else out
        if self.patch_scale is not None:
            self.patch_heads = nn.ModuleDict({str(hw): conv(width(hw), 1, 1)
                                              for hw in [4, *_resolutions(cfg.resolution // 2)]})

    def forward(self, x: Tensor, resolution: int, alpha: float = 1.0) -> Tensor:
        _check_phase(resolution, alpha, self.max_resolution)
        cells = max(resolution // self.patch_scale, 4) if self.patch_scale else None
        at_cells = None
        h = self.from_rgb[str(resolution)](x)
        hw = resolution
        if hw > 4 and alpha < 1.0:
            h_prev = self.from_rgb[str(hw // 2)](F.avg_pool2d(x, 2))
            h = _blend(self.blocks[str(hw)](h), h_prev, alpha)
            hw //= 2
            at_cells = h if hw == cells else at_cells
        while hw > 4:
            h = self.blocks[str(hw)](h)
            hw //= 2
            at_cells = h if hw == cells else at_cells
        h = self.conv4(minibatch_stddev(h, self.group_size))
        logit = self.out(self.dense4(h).flatten(1))
        if cells is None:
            return logit.squeeze(1)
        patches = self.patch_heads[str(cells)](h if cells == 4 else at_cells).flatten(1)
        return torch.cat([logit.expand(-1, patches.shape[1]), patches], dim=1)


class TwinGAN(nn.Module):
    """The shared encoder and generator; the two discriminators live apart with their own optimisers.

    With a character source, also the running mean of the training pictures' codes (the code an
    anime output gets when no reference is given) and, for the learned source, its encoder.

    The module has no forward of its own: training and inference call `encoder` and `generator`
    with the domain and resolution they need (gradients are averaged by twingan.distributed, not
    by a wrapper that would have to see every call).
    """

    def __init__(self, cfg: ModelConfig, image_channels: int = 3) -> None:
        super().__init__()
        self.encoder = Encoder(cfg, image_channels)
        self.generator = Generator(cfg, image_channels)
        if cfg.character == "learned":
            self.character = CharacterEncoder(cfg.condition_dim, cfg.character_channels, image_channels)
        if cfg.code_dim > 0:
            self.register_buffer("character_mean", torch.zeros(cfg.code_dim))
