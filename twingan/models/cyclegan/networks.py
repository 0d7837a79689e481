"""CycleGAN networks, layer for layer as the public reference (junyanz/pytorch-CycleGAN-and-pix2pix).

ResNet generator (c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3, reflect padding), U-Net
generator (4x4 stride-2 convs with skip concatenation) and the PatchGAN discriminator (70x70
receptive field with three stride-2 layers). Instance norm has no affine parameters and no running
statistics, as in the reference, so convs before it keep their bias and batch norm convs drop it.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from twingan.config import CycleGANModelConfig


def _norm_layer(kind: str) -> type[nn.Module] | functools.partial:
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) conv/linear weights and zero biases; batch-norm scales N(1, std), as the reference."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class ResnetBlock(nn.Module):
    """x + (pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm)(x)."""

    def __init__(self, channels: int, norm: str, dropout: bool) -> None:
        super().__init__()
        norm_layer, bias = _norm_layer(norm), norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias),
                                   norm_layer(channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(channels)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """Two stride-2 downsamplings, `blocks` residual blocks at 1/4 size, two transposed-conv upsamplings."""

    def __init__(self, c_in: int, c_out: int, channels: int = 64, blocks: int = 9, norm: str = "instance",
                 dropout: bool = False) -> None:
        super().__init__()
        norm_layer, bias = _norm_layer(norm), norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c_in, channels, 7, bias=bias),
                                   norm_layer(channels), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(channels * mult, channels * mult * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(channels * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(channels * 4, norm, dropout) for _ in range(blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(channels * mult, channels * mult // 2, 3, stride=2, padding=1,
                                          output_padding=1, bias=bias),
                       norm_layer(channels * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, c_out, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class UnetSkipBlock(nn.Module):
    """One U-Net level: down (LReLU, conv4x4/2, norm), the inner levels, up (ReLU, deconv4x4/2, norm).

    Every level but the outermost returns cat(LReLU(input), output). The reference's in-place
    LeakyReLU rewrites the tensor its skip concatenates, so its skip carries the activated input;
    applying the activation before the split gives the same numbers without the in-place trick.
    """

    def __init__(self, outer: int, inner: int, c_in: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, norm: str = "instance",
                 dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        norm_layer, bias = _norm_layer(norm), norm == "instance"
        downconv = nn.Conv2d(c_in or outer, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            down = [downconv]
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif innermost:
            down = [downconv]
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias), norm_layer(outer)]
        else:
            down = [downconv, norm_layer(inner)]
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias),
                  norm_layer(outer)]
            if dropout:
                up.append(nn.Dropout(0.5))
        middle = [submodule] if submodule is not None else []
        self.model = nn.Sequential(*down, *middle, *up)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        x = F.leaky_relu(x, 0.2)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with `downs` halvings: an input of 2^downs pixels reaches 1x1 at the bottleneck."""

    def __init__(self, c_in: int, c_out: int, downs: int = 8, channels: int = 64, norm: str = "instance",
                 dropout: bool = False) -> None:
        super().__init__()
        if downs < 5:
            raise ValueError(f"model.unet_downs must be at least 5, got {downs}")
        block = UnetSkipBlock(channels * 8, channels * 8, innermost=True, norm=norm)
        for _ in range(downs - 5):
            block = UnetSkipBlock(channels * 8, channels * 8, submodule=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetSkipBlock(channels * mult, channels * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipBlock(c_out, channels, c_in=c_in, submodule=block, outermost=True, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of logits, each judging one overlapping patch (70x70 for 3 layers)."""

    def __init__(self, c_in: int, channels: int = 64, layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        norm_layer, bias = _norm_layer(norm), norm == "instance"
        seq: list[nn.Module] = [nn.Conv2d(c_in, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < layers else 1
            seq += [nn.Conv2d(channels * prev, channels * mult, 4, stride=stride, padding=1, bias=bias),
                    norm_layer(channels * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(channels * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def patch_grid_size(resolution: int, layers: int) -> int:
    """Side of the PatchGAN's logit grid for a square input: layers stride-2 convs, then two stride-1."""
    size = resolution
    for _ in range(layers):
        size = (size + 2 - 4) // 2 + 1
    return size - 2


def build_generator(cfg: CycleGANModelConfig, channels: int) -> nn.Module:
    """One direction's generator, initialised N(0, 0.02)."""
    if cfg.generator == "resnet":
        net: nn.Module = ResnetGenerator(channels, channels, cfg.generator_channels, cfg.resnet_blocks, cfg.norm,
                                         cfg.dropout)
    else:
        if cfg.resolution % 2**cfg.unet_downs:
            raise ValueError(f"model.resolution {cfg.resolution} must be a multiple of 2^model.unet_downs "
                             f"= {2 ** cfg.unet_downs}")
        net = UnetGenerator(channels, channels, cfg.unet_downs, cfg.generator_channels, cfg.norm, cfg.dropout)
    init_weights(net)
    return net


def build_discriminator(cfg: CycleGANModelConfig, channels: int) -> nn.Module:
    """One domain's PatchGAN, initialised N(0, 0.02)."""
    if patch_grid_size(cfg.resolution, cfg.discriminator_layers) < 1:
        raise ValueError(f"model.resolution {cfg.resolution} is too small for a PatchGAN with "
                         f"model.discriminator_layers={cfg.discriminator_layers}")
    net = PatchDiscriminator(channels, cfg.discriminator_channels, cfg.discriminator_layers, cfg.norm)
    init_weights(net)
    return net
