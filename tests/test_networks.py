"""Tests for twingan.models.twingan.networks on small configs (32 px, <= 32 channels): seconds on a CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from twingan.config import ModelConfig
from twingan.domains import DOMAIN_A, DOMAIN_B
from twingan.models.twingan.networks import (
    Discriminator,
    DomainNorm2d,
    Encoder,
    Generator,
    TwinGAN,
    minibatch_stddev,
    num_channels,
    pixel_norm,
)

RES = 32
BATCH = 4


def small_cfg(**overrides) -> ModelConfig:
    return dataclasses.replace(
        ModelConfig(resolution=RES, channel_base=64, max_channels=32, unet_max_resolution=RES), **overrides
    )


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def images(hw: int, n: int = BATCH) -> torch.Tensor:
    return torch.rand(n, 3, hw, hw)


def translate(model: TwinGAN, x: torch.Tensor, src: int, dst: int, resolution: int, alpha: float = 1.0,
              condition: torch.Tensor | None = None) -> torch.Tensor:
    """Encode in `src`, generate in `dst`: the path training and the translator take."""
    latent, skips = model.encoder(x, src, resolution, alpha)
    return model.generator(latent, skips, dst, resolution, alpha, condition, source=src)


def domain_norms(module: torch.nn.Module) -> list[DomainNorm2d]:
    return [m for m in module.modules() if isinstance(m, DomainNorm2d)]


def perturb_domain(module: torch.nn.Module, domain: int) -> None:
    """Give one domain's norm set its own affine parameters and running statistics."""
    with torch.no_grad():
        for norm in domain_norms(module):
            bn = norm.norms[domain]
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.5)
            bn.running_mean.normal_(0.0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)


def test_channel_schedule_matches_published_recipe() -> None:
    cfg = ModelConfig()
    assert [num_channels(cfg, 2**k) for k in range(2, 9)] == [256, 256, 256, 128, 64, 32, 16]


@pytest.mark.parametrize("resolution", [4, 8, 16, 32])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_shapes(resolution: int, alpha: float) -> None:
    cfg = small_cfg()
    model, disc = TwinGAN(cfg), Discriminator(cfg)
    x = images(resolution)
    latent, skips = model.encoder(x, DOMAIN_A, resolution, alpha)
    assert latent.shape == (BATCH, num_channels(cfg, 4), 4, 4)
    expected = [2**k for k in range(3, resolution.bit_length())]
    assert sorted(skips) == expected
    for hw, skip in skips.items():
        assert skip.shape == (BATCH, num_channels(cfg, hw // 2), hw, hw)
    out = model.generator(latent, skips, DOMAIN_B, resolution, alpha, source=DOMAIN_A)
    assert out.shape == (BATCH, 3, resolution, resolution)
    assert disc(x, resolution, alpha).shape == (BATCH,)


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_alpha_zero_equals_previous_resolution(resolution: int) -> None:
    cfg = small_cfg()
    model, disc = TwinGAN(cfg).eval(), Discriminator(cfg).eval()
    perturb_domain(model, DOMAIN_B)
    x = images(resolution)
    x_low = F.avg_pool2d(x, 2)
    with torch.no_grad():
        latent, skips = model.encoder(x, DOMAIN_B, resolution, alpha=0.0)
        latent_low, skips_low = model.encoder(x_low, DOMAIN_B, resolution // 2)
        torch.testing.assert_close(latent, latent_low, rtol=0, atol=0)
        for hw, skip in skips_low.items():
            torch.testing.assert_close(skips[hw], skip, rtol=0, atol=0)

        out = model.generator(latent, skips, DOMAIN_B, resolution, alpha=0.0, source=DOMAIN_B)
        prev = model.generator(latent, skips, DOMAIN_B, resolution // 2, source=DOMAIN_B)
        torch.testing.assert_close(out, F.interpolate(prev, scale_factor=2, mode="nearest"))
        # alpha = 0.5 really blends, so the equality above is not vacuous.
        half = model.generator(latent, skips, DOMAIN_B, resolution, alpha=0.5, source=DOMAIN_B)
        assert not torch.allclose(half, out)

        torch.testing.assert_close(disc(x, resolution, alpha=0.0), disc(x_low, resolution // 2))


def test_domains_have_separate_parameters_and_statistics() -> None:
    model = TwinGAN(small_cfg())
    for norm in domain_norms(model):
        a, b = norm.norms[DOMAIN_A], norm.norms[DOMAIN_B]
        for name in ("weight", "bias", "running_mean", "running_var"):
            ta, tb = getattr(a, name), getattr(b, name)
            assert ta is not tb and ta.data_ptr() != tb.data_ptr()
    norm = model.encoder.from_rgb[str(RES)].norm
    before_b = norm.norms[DOMAIN_B].running_mean.clone()
    model.train()
    model.encoder(images(RES) * 5 + 1, DOMAIN_A, RES)
    assert not torch.equal(norm.norms[DOMAIN_A].running_mean, torch.zeros_like(before_b))
    torch.testing.assert_close(norm.norms[DOMAIN_B].running_mean, before_b, rtol=0, atol=0)


@pytest.mark.parametrize("train", [False, True])
def test_domain_switch_changes_output_only_for_that_domain(train: bool) -> None:
    model = TwinGAN(small_cfg()).train(train)
    x = images(RES)
    with torch.no_grad():
        before_a = translate(model, x, DOMAIN_A, DOMAIN_A, RES)
        torch.testing.assert_close(translate(model, x, DOMAIN_B, DOMAIN_B, RES), before_a)  # fresh: sets equal
        perturb_domain(model, DOMAIN_B)
        after_a = translate(model, x, DOMAIN_A, DOMAIN_A, RES)
        after_b = translate(model, x, DOMAIN_B, DOMAIN_B, RES)
        mixed = translate(model, x, DOMAIN_A, DOMAIN_B, RES)
    torch.testing.assert_close(after_a, before_a, rtol=0, atol=0)
    assert not torch.allclose(after_b, after_a, atol=1e-3)
    assert not torch.allclose(mixed, after_a, atol=1e-3)


def test_bad_domain_raises() -> None:
    model = TwinGAN(small_cfg())
    with pytest.raises(ValueError, match="domain"):
        translate(model, images(8), DOMAIN_A, 2, 8)
    with pytest.raises(ValueError, match="domain"):
        translate(model, images(8), -1, DOMAIN_A, 8)


@pytest.mark.parametrize("hw", [8, 16, 32])
def test_unet_link_carries_gradient_to_encoder(hw: int) -> None:
    """Latent and other skips detached: encoder block hw can only get gradient through its own link."""

    def block_grad(unet_max: int) -> float:
        torch.manual_seed(0)
        model = TwinGAN(small_cfg(unet_max_resolution=unet_max))
        latent, skips = model.encoder(images(RES), DOMAIN_A, RES)
        only_hw = {k: s if k == hw else s.detach() for k, s in skips.items()}
        model.generator(latent.detach(), only_hw, DOMAIN_B, RES, source=DOMAIN_A).square().mean().backward()
        params = model.encoder.blocks[str(hw)].parameters()
        return sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)

    assert block_grad(unet_max=hw) > 0
    assert block_grad(unet_max=hw // 2) == 0.0


def test_unet_cap_drops_skip_from_generator() -> None:
    cfg = small_cfg(unet_max_resolution=16)
    model = TwinGAN(cfg).eval()
    latent, skips = model.encoder(images(RES), DOMAIN_A, RES)
    with torch.no_grad():
        out = model.generator(latent, skips, DOMAIN_A, RES, source=DOMAIN_A)
        changed32 = {**skips, 32: torch.randn_like(skips[32])}
        torch.testing.assert_close(model.generator(latent, changed32, DOMAIN_A, RES, source=DOMAIN_A), out)
        changed16 = {**skips, 16: torch.randn_like(skips[16])}
        assert not torch.allclose(model.generator(latent, changed16, DOMAIN_A, RES, source=DOMAIN_A), out)
    with pytest.raises(ValueError, match="skips"):
        model.generator(latent, {32: skips[32]}, DOMAIN_A, RES, source=DOMAIN_A)


def test_condition_ignored_at_init_and_used_after_training() -> None:
    cfg = small_cfg(condition_dim=5)
    model = TwinGAN(cfg).eval()
    x = images(RES)
    c1, c2 = torch.randn(BATCH, 5), torch.randn(BATCH, 5)
    with torch.no_grad():
        plain = translate(model, x, DOMAIN_A, DOMAIN_B, RES)
        torch.testing.assert_close(translate(model, x, DOMAIN_A, DOMAIN_B, RES, condition=c1), plain)
        torch.testing.assert_close(translate(model, x, DOMAIN_A, DOMAIN_B, RES, condition=c2), plain)
        for norm in domain_norms(model.generator):
            norm.fc_gamma.weight.normal_(0.0, 0.5)
            norm.fc_beta.weight.normal_(0.0, 0.5)
        out1 = translate(model, x, DOMAIN_A, DOMAIN_B, RES, condition=c1)
        out2 = translate(model, x, DOMAIN_A, DOMAIN_B, RES, condition=c2)
        # l2-normalised: only the direction of c matters.
        torch.testing.assert_close(translate(model, x, DOMAIN_A, DOMAIN_B, RES, condition=3 * c1), out1)
    assert not torch.allclose(out1, out2, atol=1e-3)
    assert not domain_norms(model.encoder)[0].condition_dim


def test_condition_misuse_raises() -> None:
    x = images(8)
    with pytest.raises(ValueError, match="condition_dim"):
        translate(TwinGAN(small_cfg()), x, DOMAIN_A, DOMAIN_B, 8, condition=torch.randn(BATCH, 5))
    with pytest.raises(ValueError, match="shape"):
        translate(TwinGAN(small_cfg(condition_dim=5)), x, DOMAIN_A, DOMAIN_B, 8, condition=torch.randn(BATCH, 4))


@pytest.mark.parametrize("equalized_lr", [False, True])
@pytest.mark.parametrize("spectral", [False, True])
def test_variants_build_and_train_step(equalized_lr: bool, spectral: bool) -> None:
    cfg = small_cfg(equalized_lr=equalized_lr, spectral_norm=spectral)
    model, disc = TwinGAN(cfg), Discriminator(cfg)
    x = images(16)
    logits = disc(translate(model, x, DOMAIN_A, DOMAIN_B, 16, 0.5), 16, 0.5)
    logits.mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(logits).all()
    conv = disc.blocks["16"][0][0]
    assert parametrize.is_parametrized(conv, "weight") == spectral
    if equalized_lr:
        assert conv.scale == pytest.approx(2**0.5 / (num_channels(cfg, 16) * 9) ** 0.5)
    if spectral and not equalized_lr:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.1)


def test_equalized_lr_storage_is_unit_variance() -> None:
    model = TwinGAN(small_cfg(equalized_lr=True))
    weight = model.generator.blocks["32"].conv0.conv.weight
    assert weight.std().item() == pytest.approx(1.0, abs=0.1)
    plain = TwinGAN(small_cfg()).generator.blocks["32"].conv0.conv.weight
    assert plain.std().item() == pytest.approx(0.02, abs=0.005)


def test_he_init_keeps_the_discriminator_signal_alive() -> None:
    he, original = Discriminator(small_cfg(weight_init="he")), Discriminator(small_cfg())
    conv = he.blocks["32"][0][0]
    fan_in = conv.weight[0].numel()
    assert conv.weight.std().item() == pytest.approx(2**0.5 / fan_in**0.5, rel=0.1)
    assert conv.scale == 1.0
    x = images(RES)
    spread = {name: disc(x, RES).std().item() for name, disc in (("he", he), ("original", original))}
    assert spread["original"] < 1e-3 < spread["he"]


def test_minibatch_stddev_falls_back_to_batch_divisor() -> None:
    x = torch.randn(6, 3, 4, 4)
    out = minibatch_stddev(x, group_size=4)  # 4 does not divide 6: groups of 3
    assert out.shape == (6, 4, 4, 4)
    expected = x.reshape(3, 2, 3, 4, 4).std(dim=0, unbiased=False).mean(dim=(1, 2, 3))
    torch.testing.assert_close(out[:2, 3, 0, 0], expected, atol=1e-4, rtol=1e-4)
    assert minibatch_stddev(torch.randn(1, 3, 4, 4), 4).shape == (1, 4, 4, 4)
    assert Discriminator(small_cfg())(images(8, n=5), 8).shape == (5,)


@pytest.mark.parametrize("bad", [4, 12, 0])
def test_bad_config_resolution_raises(bad: int) -> None:
    for cls in (Encoder, Generator, Discriminator, TwinGAN):
        with pytest.raises(ValueError, match="resolution"):
            cls(small_cfg(resolution=bad))


@pytest.mark.parametrize("bad", [2, 12, 64])
def test_bad_forward_resolution_raises(bad: int) -> None:
    cfg = small_cfg()
    with pytest.raises(ValueError, match="resolution"):
        translate(TwinGAN(cfg), images(bad), DOMAIN_A, DOMAIN_B, bad)
    with pytest.raises(ValueError, match="resolution"):
        Discriminator(cfg)(images(bad), bad)
    with pytest.raises(ValueError, match="alpha"):
        Discriminator(cfg)(images(8), 8, alpha=1.5)


def test_min_channels_floors_only_the_top_stages() -> None:
    plain = ModelConfig(resolution=128, channel_base=256, max_channels=64)
    floored = ModelConfig(resolution=128, channel_base=256, max_channels=64, min_channels=16)
    assert [num_channels(plain, 2**k) for k in range(2, 8)] == [64, 64, 64, 32, 16, 8]
    assert [num_channels(floored, 2**k) for k in range(2, 8)] == [64, 64, 64, 32, 16, 16]
    with pytest.raises(ValueError, match="min_channels"):
        TwinGAN(small_cfg(resolution=16, max_channels=8, min_channels=16))


def test_too_few_channels_raises() -> None:
    with pytest.raises(ValueError, match="channel_base"):
        TwinGAN(small_cfg(resolution=64, channel_base=8))


def test_channels_last_matches_contiguous() -> None:
    cfg = small_cfg()
    model, disc = TwinGAN(cfg).eval(), Discriminator(cfg).eval()
    perturb_domain(model, DOMAIN_B)
    x = images(RES)
    with torch.no_grad():
        ref = translate(model, x, DOMAIN_A, DOMAIN_B, RES, 0.5)
        ref_logits = disc(x, RES, 0.5)
        model, disc = model.to(memory_format=torch.channels_last), disc.to(memory_format=torch.channels_last)
        x_cl = x.to(memory_format=torch.channels_last)
        torch.testing.assert_close(translate(model, x_cl, DOMAIN_A, DOMAIN_B, RES, 0.5), ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(disc(x_cl, RES, 0.5), ref_logits, atol=1e-4, rtol=1e-4)


def test_autocast_bf16_runs() -> None:
    cfg = small_cfg(condition_dim=3)
    model, disc = TwinGAN(cfg), Discriminator(cfg)
    x = images(RES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = translate(model, x, DOMAIN_A, DOMAIN_B, RES, 0.5, condition=torch.randn(BATCH, 3))
        logits = disc(out, RES, 0.5)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    logits.float().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_checkpoint_keys_do_not_depend_on_phase() -> None:
    """Every block exists from the start, so a state_dict saved at 8 px loads into the 32 px phase."""
    cfg = small_cfg()
    a, b = TwinGAN(cfg), TwinGAN(cfg)
    translate(a, images(8), DOMAIN_A, DOMAIN_B, 8)
    b.load_state_dict(a.state_dict())
    assert translate(b, images(RES), DOMAIN_A, DOMAIN_B, RES).shape == (BATCH, 3, RES, RES)


def test_pixel_norm_gives_unit_rms() -> None:
    x = torch.randn(2, 8, 3, 3) * 7
    torch.testing.assert_close(pixel_norm(x).pow(2).mean(dim=1), torch.ones(2, 3, 3), atol=1e-4, rtol=1e-4)
