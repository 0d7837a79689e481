"""The Twin-GAN quality switches: model.norm, model.skip_gate, model.discriminator, loss.nce,
model.skip_highpass_from, model.skip_dropout, model.translation_link_max_resolution,
loss.link_adversarial, train.final_phase_images, and
the proxy score they are ranked by (docs/quality.md)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import load_tool
from test_networks import translate
from test_training import metrics, tiny_preset

from twingan.checkpoint import load_checkpoint
from twingan.config import PRESET_DIR, ModelConfig, load_config
from twingan.domains import DOMAIN_A, DOMAIN_B
from twingan.evaluation.scores import evaluate, proxy_scores
from twingan.errors import UserError
from twingan.models.twingan.link_critic import LinkCritic, critic_loss, encoder_loss
from twingan.models.twingan.networks import (Conv2d, Discriminator, DomainNorm2d, Generator, SkipGate, TwinGAN,
                                             drop_links, encoder_channels, high_pass)
from twingan.models.twingan.patch_nce import PatchNCE
from twingan.models.schedule import build_phases
from twingan.train.trainer import Trainer
from twingan.infer.translator import Translator

RES = 32


def small_cfg(**overrides) -> ModelConfig:
    return dataclasses.replace(ModelConfig(resolution=RES, channel_base=64, max_channels=32,
                                           unet_max_resolution=RES), **overrides)


def random_code() -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """A random latent and links of small_cfg's encoder, for two pictures."""
    levels = {hw: torch.randn(2, c, hw, hw) for hw, c in encoder_channels(small_cfg()).items()}
    return levels.pop(4), levels


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------- model.norm
@pytest.mark.parametrize("kind", ["instance", "layer_instance"])
def test_instance_kinds_remove_each_pictures_own_statistics(kind):
    norm = DomainNorm2d(6, kind=kind)
    x = torch.randn(3, 6, 8, 8)
    scale, shift = torch.tensor([2.0, 0.5, 3.0]), torch.tensor([1.0, -2.0, 0.3])
    brighter = x * scale[:, None, None, None] + shift[:, None, None, None]
    torch.testing.assert_close(norm(brighter, DOMAIN_A), norm(x, DOMAIN_A), rtol=1e-4, atol=1e-4)
    batch = DomainNorm2d(6, kind="batch").train()
    assert not torch.allclose(batch(brighter, DOMAIN_A), batch(x, DOMAIN_A), atol=1e-2)


@pytest.mark.parametrize("kind", ["batch", "instance", "layer_instance"])
def test_the_domain_index_selects_that_domains_parameters_only(kind):
    cfg = small_cfg(norm=kind)
    model = TwinGAN(cfg).eval()
    x = torch.rand(2, 3, RES, RES)
    before = [translate(model, x, DOMAIN_A, d, RES) for d in (DOMAIN_A, DOMAIN_B)]
    with torch.no_grad():
        for norm in (m for m in model.modules() if isinstance(m, DomainNorm2d)):
            if kind == "batch":
                norm.norms[DOMAIN_B].weight.uniform_(0.5, 1.5)
            else:
                norm.weight[DOMAIN_B].uniform_(0.5, 1.5)
                norm.bias[DOMAIN_B].normal_(0, 0.5)
    after = [translate(model, x, DOMAIN_A, d, RES) for d in (DOMAIN_A, DOMAIN_B)]
    # Domain A's own path (encoder and generator) is untouched; anything through B changed.
    torch.testing.assert_close(after[DOMAIN_A], before[DOMAIN_A])
    assert (after[DOMAIN_B] - before[DOMAIN_B]).abs().mean() > 1e-3


def test_layer_instance_mix_is_per_domain_and_clamped():
    norm = DomainNorm2d(4, kind="layer_instance")
    assert norm.rho.shape == (2, 4) and torch.all(norm.rho == 0.9)
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        norm.rho[DOMAIN_B].fill_(7.0)  # clamped to 1: pure instance norm
    pure = DomainNorm2d(4, kind="instance")
    torch.testing.assert_close(norm(x, DOMAIN_B), pure(x, DOMAIN_B))
    assert not torch.allclose(norm(x, DOMAIN_A), pure(x, DOMAIN_A))


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="unknown normalisation"):
        DomainNorm2d(4, kind="group")


# ----------------------------------------------------------------- model.skip_gate
def test_a_closed_gate_passes_nothing():
    cfg = small_cfg(skip_gate="gated")
    gen = Generator(cfg).eval()
    latent, skips = random_code()
    zeros = {hw: torch.zeros_like(s) for hw, s in skips.items()}
    for domain in (DOMAIN_A, DOMAIN_B):
        torch.testing.assert_close(gen(latent, skips, domain, RES, source=DOMAIN_A),
                                   gen(latent, zeros, domain, RES, source=DOMAIN_A))
    ungated = Generator(small_cfg()).eval()
    assert not torch.allclose(ungated(latent, skips, DOMAIN_A, RES, source=DOMAIN_A),
                              ungated(latent, zeros, DOMAIN_A, RES, source=DOMAIN_A))


def test_a_gate_opens_per_domain_and_learns_from_a_closed_start():
    cfg = small_cfg(skip_gate="gated")
    gen = Generator(cfg).eval()
    gates = [m for m in gen.modules() if isinstance(m, SkipGate)]
    assert len(gates) == 3 and all(torch.all(g.weight == 0) for g in gates)
    latent, skips = random_code()
    gen(latent, skips, DOMAIN_B, RES, source=DOMAIN_A).square().mean().backward()
    assert all(g.weight.grad[DOMAIN_B].abs().sum() > 0 and torch.all(g.weight.grad[DOMAIN_A] == 0) for g in gates)
    zeros = {hw: torch.zeros_like(s) for hw, s in skips.items()}
    with torch.no_grad():
        for g in gates:
            g.weight[DOMAIN_B].fill_(1.0)
    torch.testing.assert_close(gen(latent, skips, DOMAIN_A, RES, source=DOMAIN_A),
                               gen(latent, zeros, DOMAIN_A, RES, source=DOMAIN_A))
    assert not torch.allclose(gen(latent, skips, DOMAIN_B, RES, source=DOMAIN_A),
                              gen(latent, zeros, DOMAIN_B, RES, source=DOMAIN_A))


def test_gates_learn_at_the_domain_switch_rate(tmp_path):
    cfg = load_config(tiny_preset(tmp_path), ["model.skip_gate=gated", "train.domain_switch_lr_multiplier=10"])
    recipe = Trainer(cfg, tmp_path / "run", progress=False).recipe
    switch = {id(p) for p in recipe.opt_g.param_groups[1]["params"]}
    gates = [m.weight for m in recipe.net.modules() if isinstance(m, SkipGate)]
    assert gates and all(id(g) in switch for g in gates)


# ----------------------------------------------------------------- model.skip_highpass_from
def test_the_high_pass_removes_flat_colour_and_keeps_an_edge():
    flat = torch.randn(1, 4, 1, 1).expand(1, 4, 8, 8).contiguous()
    torch.testing.assert_close(high_pass(flat), torch.zeros_like(flat))
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1.0
    out = high_pass(impulse)
    assert out[0, 0, 2, 2] == 1.0
    torch.testing.assert_close(out[0, 0, 1:4, 1:4].sum(), torch.tensor(0.0))
    step = torch.zeros(1, 1, 6, 6)
    step[..., 3:] = 1.0
    assert high_pass(step)[0, 0, :, 2:4].abs().min() > 0.3


def test_high_passed_links_cannot_carry_flat_colour_but_lower_links_can():
    latent, skips = random_code()

    def shifted(hw: int) -> dict[int, torch.Tensor]:
        offset = torch.randn(1, skips[hw].shape[1], 1, 1)
        return {**skips, hw: skips[hw] + offset}

    gen = Generator(small_cfg(skip_highpass_from=32)).eval()
    assert [hw for hw, block in gen.blocks.items() if block.high_pass] == ["32"]
    for domain in (DOMAIN_A, DOMAIN_B):
        torch.testing.assert_close(gen(latent, shifted(32), domain, RES, source=DOMAIN_A),
                                   gen(latent, skips, domain, RES, source=DOMAIN_A))
        assert not torch.allclose(gen(latent, shifted(16), domain, RES, source=DOMAIN_A),
                                  gen(latent, skips, domain, RES, source=DOMAIN_A))
    whole = Generator(small_cfg()).eval()
    assert not any(block.high_pass for block in whole.blocks.values())
    assert not torch.allclose(whole(latent, shifted(32), DOMAIN_B, RES, source=DOMAIN_A),
                              whole(latent, skips, DOMAIN_B, RES, source=DOMAIN_A))


@pytest.mark.parametrize("where", [4, 12, 64])
def test_a_high_pass_outside_the_links_is_refused(where):
    with pytest.raises(ValueError, match="model.skip_highpass_from"):
        Generator(small_cfg(skip_highpass_from=where))


# ----------------------------------------------------------------- model.skip_dropout
def test_drop_links_zeroes_whole_pictures_at_about_the_rate_and_keeps_the_rest_as_they_are():
    skip = torch.randn(4000, 3, 2, 2) + 5.0
    dropped = drop_links(skip, 0.3)
    zero = (dropped == 0).flatten(1).all(dim=1)
    kept = (dropped == skip).flatten(1).all(dim=1)
    assert bool((zero ^ kept).all())
    assert 0.27 < zero.float().mean().item() < 0.33


def test_dropped_links_carry_nothing_in_training_and_every_link_serves_inference():
    latent, skips = random_code()
    changed = {hw: torch.randn_like(s) for hw, s in skips.items()}
    gen = Generator(small_cfg(skip_dropout=0.9999999))
    assert [block.dropout for block in gen.blocks.values()] == [0.9999999] * 3
    for domain in (DOMAIN_A, DOMAIN_B):
        gen.train()
        torch.testing.assert_close(gen(latent, changed, domain, RES, source=DOMAIN_A),
                                   gen(latent, skips, domain, RES, source=DOMAIN_A))
        gen.eval()
        assert not torch.allclose(gen(latent, changed, domain, RES, source=DOMAIN_A),
                                  gen(latent, skips, domain, RES, source=DOMAIN_A))
    plain = Generator(small_cfg()).eval()
    plain.load_state_dict(gen.state_dict())
    torch.testing.assert_close(plain(latent, skips, DOMAIN_B, RES, source=DOMAIN_A),
                               gen(latent, skips, DOMAIN_B, RES, source=DOMAIN_A))


@pytest.mark.parametrize("probability", ["1.0", "-0.1"])
def test_a_link_dropout_outside_zero_to_one_is_refused(probability):
    with pytest.raises(UserError, match="model.skip_dropout"):
        load_config("twingan_cpu_64", [f"model.skip_dropout={probability}"])


# ----------------------------------------------------------------- model.translation_link_max_resolution
def test_translations_take_the_links_up_to_their_limit_and_reconstructions_take_every_link():
    latent, skips = random_code()

    def changed(hw: int) -> dict[int, torch.Tensor]:
        return {**skips, hw: torch.randn_like(skips[hw])}

    gen = Generator(small_cfg(translation_link_max_resolution=16)).eval()
    assert [hw for hw, block in gen.blocks.items() if not block.into_translations] == ["32"]
    for source in (DOMAIN_A, DOMAIN_B):
        other = 1 - source
        translated = gen(latent, skips, other, RES, source=source)
        torch.testing.assert_close(gen(latent, changed(32), other, RES, source=source), translated)
        assert not torch.allclose(gen(latent, changed(16), other, RES, source=source), translated)
        reconstructed = gen(latent, skips, source, RES, source=source)
        assert not torch.allclose(gen(latent, changed(32), source, RES, source=source), reconstructed)
    every = Generator(small_cfg()).eval()
    every.load_state_dict(gen.state_dict())
    without_32 = {**skips, 32: torch.zeros_like(skips[32])}
    torch.testing.assert_close(gen(latent, skips, DOMAIN_B, RES, source=DOMAIN_A),
                               every(latent, without_32, DOMAIN_B, RES, source=DOMAIN_A))
    torch.testing.assert_close(gen(latent, skips, DOMAIN_A, RES, source=DOMAIN_A),
                               every(latent, skips, DOMAIN_A, RES, source=DOMAIN_A))
    assert not torch.allclose(every(latent, changed(32), DOMAIN_B, RES, source=DOMAIN_A),
                              every(latent, skips, DOMAIN_B, RES, source=DOMAIN_A))


def test_the_translator_translates_without_the_links_above_the_limit(tmp_path):
    preset = tiny_preset(tmp_path, model={"translation_link_max_resolution": 4})
    Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    translator = Translator.from_checkpoint(tmp_path / "run", "cpu")
    net, x = translator.net, torch.rand(2, 3, 8, 8) * 2 - 1
    latent, skips = net.encoder(x, DOMAIN_A, 8)
    no_links = {hw: torch.zeros_like(s) for hw, s in skips.items()}
    with torch.no_grad():
        expected = net.generator(latent, no_links, DOMAIN_B, 8, source=DOMAIN_B).clamp(-1, 1)
        torch.testing.assert_close(translator.inference.one_way(x, DOMAIN_A, DOMAIN_B), expected)
        latent_b, skips_b = net.encoder(x, DOMAIN_B, 8)
        without = net.generator(latent_b, {hw: torch.zeros_like(s) for hw, s in skips_b.items()}, DOMAIN_B, 8,
                                source=DOMAIN_B)
        assert not torch.allclose(translator.inference.reconstruct(x, DOMAIN_B), without.clamp(-1, 1))


@pytest.mark.parametrize("where", [2, 12, 64])
def test_a_translation_link_limit_outside_the_generator_is_refused(where):
    with pytest.raises(ValueError, match="model.translation_link_max_resolution"):
        Generator(small_cfg(translation_link_max_resolution=where))


# ----------------------------------------------------------------- model.trunk_blocks
def test_the_trunk_sits_at_its_resolution_and_switches_with_the_domain():
    cfg = small_cfg(trunk_blocks=2, trunk_resolution=16)
    gen = Generator(cfg)
    assert [hw for hw, block in gen.blocks.items() if len(block.trunk)] == ["16"]
    assert len(gen.blocks["16"].trunk) == 2
    latent, skips = random_code()
    out = gen(latent, skips, DOMAIN_B, RES, source=DOMAIN_A)
    assert out.shape == (2, 3, RES, RES)
    out.square().mean().backward()
    unit = gen.blocks["16"].trunk[1]
    assert unit.conv1.weight.grad.abs().sum() > 0
    norms = unit.norm1.norms
    assert norms[DOMAIN_B].weight.grad.abs().sum() > 0 and norms[DOMAIN_A].weight.grad is None
    with torch.no_grad():
        unit.conv1.weight.mul_(2)
    assert not torch.allclose(gen(latent, skips, DOMAIN_B, RES, source=DOMAIN_A), out)


@pytest.mark.parametrize("where", [4, 12, 64])
def test_a_trunk_outside_the_generator_is_refused(where):
    with pytest.raises(ValueError, match="model.trunk_resolution"):
        Generator(small_cfg(trunk_blocks=1, trunk_resolution=where))


# ----------------------------------------------------------------- model.discriminator
@pytest.mark.parametrize("resolution,cells", [(4, 16), (8, 16), (16, 16), (32, 64)])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_patch_critic_scores_every_cell_and_the_whole(resolution, cells, alpha):
    disc = Discriminator(small_cfg(discriminator="patch", patch_scale=4))
    logits = disc(torch.rand(4, 3, resolution, resolution), resolution, alpha)
    assert logits.shape == (4, 2 * cells)
    # The global logit is repeated once per cell: the GAN losses' mean weighs both halves equally.
    assert torch.all(logits[:, :cells] == logits[:, :1])


def test_patch_grid_follows_patch_scale():
    disc = Discriminator(small_cfg(discriminator="patch", patch_scale=2))
    assert disc(torch.rand(2, 3, RES, RES), RES).shape == (2, 2 * 16 * 16)
    assert Discriminator(small_cfg())(torch.rand(2, 3, RES, RES), RES).shape == (2,)


def test_a_patch_cell_sees_only_its_part_of_the_picture():
    disc = Discriminator(small_cfg(discriminator="patch", patch_scale=2, mbstd_group_size=1)).eval()
    x = torch.rand(1, 3, RES, RES)
    changed = x.clone()
    changed[:, :, :4, :4] += 1.0  # the top-left corner only
    cells = disc(changed, RES)[0, 256:].reshape(16, 16) - disc(x, RES)[0, 256:].reshape(16, 16)
    assert cells[0, 0].abs() > 0 and torch.all(cells[12:, 12:] == 0)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_discriminator_width_widens_every_critic_stage_and_keeps_its_scores(alpha):
    """The generator side is untouched: only the critics' channels grow, their outputs do not."""
    thin = Discriminator(small_cfg(discriminator="patch", patch_scale=4))
    wide = Discriminator(small_cfg(discriminator="patch", patch_scale=4, discriminator_width=3))
    convs = [(layer.weight.shape, wide.get_submodule(name).weight.shape)
             for name, layer in thin.named_modules() if isinstance(layer, Conv2d)]
    for thin_shape, wide_shape in convs:
        patch_head = thin_shape[0] == 1
        assert wide_shape[0] == thin_shape[0] * (1 if patch_head else 3)
    x = torch.rand(4, 3, RES, RES)
    assert wide(x, RES, alpha).shape == thin(x, RES, alpha).shape == (4, 2 * 64)
    assert sum(p.numel() for p in TwinGAN(small_cfg(discriminator_width=3)).parameters()) == \
        sum(p.numel() for p in TwinGAN(small_cfg()).parameters())


# ----------------------------------------------------------------- loss.link_adversarial
LINK_SHAPES = {4: (8, 4, 4), 8: (6, 8, 8)}


def _two_domains_features(pattern: dict[int, torch.Tensor]) -> list[dict[int, torch.Tensor]]:
    """Latent and one link per domain, 16 pictures each; anime's differ from the photos' by `pattern`."""
    return [{hw: torch.randn(16, *shape) + (pattern[hw] if d == DOMAIN_B else 0.0)
             for hw, shape in LINK_SHAPES.items()} for d in (DOMAIN_A, DOMAIN_B)]


def test_the_link_critic_learns_to_tell_the_domains_features_apart():
    critic = LinkCritic({4: 8, 8: 6})
    pattern = {hw: torch.randn(*shape) for hw, shape in LINK_SHAPES.items()}
    assert critic(_two_domains_features(pattern)[DOMAIN_A]).shape == (16, 2)
    optimiser = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(80):
        loss = critic_loss(critic, _two_domains_features(pattern))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    chance = 2 * math.log(2)
    with torch.no_grad():
        assert float(critic_loss(critic, _two_domains_features(pattern))) < 0.3 * chance
        alike = _two_domains_features({hw: torch.zeros(*shape) for hw, shape in LINK_SHAPES.items()})
        assert float(critic_loss(critic, alike)) > 0.7 * chance


def test_the_encoder_term_is_lowest_at_one_half_and_reaches_only_the_features():
    critic = LinkCritic({4: 8, 8: 6})
    pattern = {hw: torch.randn(*shape) for hw, shape in LINK_SHAPES.items()}
    features = [{hw: x.requires_grad_() for hw, x in levels.items()} for levels in _two_domains_features(pattern)]
    with torch.no_grad():
        for head in critic.heads.values():
            head[-1].weight.zero_()
            head[-1].bias.zero_()
    torch.testing.assert_close(encoder_loss(critic, features), torch.tensor(2 * math.log(2)))
    with torch.no_grad():
        for head in critic.heads.values():
            head[-1].weight.normal_(std=0.01)
            head[-1].bias.fill_(3.0)
    loss = encoder_loss(critic, features)
    assert float(loss) > 2 * math.log(2) + 1.0
    critic.requires_grad_(False)
    loss.backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for levels in features for x in levels.values())


def test_the_link_critic_is_trained_with_the_critics_logged_saved_and_resumed(tmp_path):
    cfg = load_config(tiny_preset(tmp_path, loss={"link_adversarial": 1.0}))
    trainer = Trainer(cfg, tmp_path / "full", progress=False)
    recipe = trainer.recipe
    assert {id(p) for p in recipe.link_critic.parameters()} <= {id(p) for p in recipe.opt_d.param_groups[0]["params"]}
    before = [p.detach().clone() for p in recipe.link_critic.parameters()]
    trainer.run()
    assert any(not torch.equal(p, q) for p, q in zip(recipe.link_critic.parameters(), before))
    logged = metrics(tmp_path / "full")
    assert all({"link_adversarial", "d_link"} <= set(row) for row in logged)
    assert any(k.startswith("heads.") for k in load_checkpoint(tmp_path / "full")["link_critic"])
    resumed = Trainer(cfg, tmp_path / "resumed", progress=False)
    resumed.resume(tmp_path / "full" / "checkpoints" / "ckpt-000000000012.pt")
    resumed.run()
    tail = [m["d_link"] for m in logged if m["images_seen"] > 12]
    assert tail == pytest.approx([m["d_link"] for m in metrics(tmp_path / "resumed")], rel=1e-5)
    off = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "off", progress=False).recipe
    assert off.link_critic is None and "link_critic" not in off.state_dict()


# ----------------------------------------------------------------- loss.nce
def test_patch_nce_is_low_when_patches_match_and_the_source_gets_no_gradient():
    nce = PatchNCE({4: 8, 8: 6})
    source = {4: torch.randn(2, 8, 4, 4, requires_grad=True), 8: torch.randn(2, 6, 8, 8, requires_grad=True)}
    chance = math.log(16) / 2 + math.log(16) / 2  # 16 patches at 4 px, 16 sampled of 64 at 8 px
    shuffled = {hw: s.detach()[:, :, torch.randperm(s.shape[2])] for hw, s in source.items()}
    optimiser = torch.optim.Adam(nce.parameters(), lr=1e-2)
    for _ in range(60):
        loss = nce({hw: s.detach() + 0.05 * torch.randn_like(s) for hw, s in source.items()}, source, patches=16)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        matched = nce({hw: s.detach() for hw, s in source.items()}, source, patches=16)
        mismatched = nce(shuffled, source, patches=16)
    assert float(matched) < 0.3 * chance
    assert float(mismatched) > float(matched) + 1.0
    assert all(s.grad is None for s in source.values())


def test_a_short_run_lowers_the_nce_term(tmp_path):
    preset = tiny_preset(tmp_path, loss={"nce": 1.0, "nce_patches": 16},
                         train={"start_resolution": 8, "phase_images": 600, "lr": 5e-4, "checkpoint_every": 100_000})
    Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    nce = [m["nce"] for m in metrics(tmp_path / "run")]
    assert len(nce) == 150
    start, end = sum(nce[:15]) / 15, sum(nce[-15:]) / 15
    assert end < 0.8 * start, (start, end)


def test_nce_heads_are_trained_saved_and_resumed(tmp_path):
    cfg = load_config(tiny_preset(tmp_path, loss={"nce": 1.0}))
    Trainer(cfg, tmp_path / "full", progress=False).run()
    state = load_checkpoint(tmp_path / "full")
    assert any(k.startswith("heads.") for k in state["nce"])
    resumed = Trainer(cfg, tmp_path / "resumed", progress=False)
    resumed.resume(tmp_path / "full" / "checkpoints" / "ckpt-000000000012.pt")
    resumed.run()
    full_tail = [m["nce"] for m in metrics(tmp_path / "full") if m["images_seen"] > 12]
    assert full_tail == pytest.approx([m["nce"] for m in metrics(tmp_path / "resumed")], rel=1e-5)


# ----------------------------------------------------------------- all switches together
def test_every_switch_trains_translates_and_reloads(tmp_path):
    overrides = ["model.norm=layer_instance", "model.skip_gate=gated", "model.discriminator=patch", "loss.nce=1",
                 "model.trunk_blocks=1", "model.trunk_resolution=8", "model.discriminator_width=2",
                 "model.translation_link_max_resolution=4"]
    Trainer(load_config(tiny_preset(tmp_path), overrides), tmp_path / "run", progress=False).run()
    translator = Translator.from_checkpoint(tmp_path / "run", "cpu")
    sets = {d: torch.rand(4, 3, 8, 8) * 2 - 1 for d in "ab"}
    scores = proxy_scores(evaluate(sets, translator, None, progress=False))
    assert set(scores) == {"swd_a2b", "swd_b2a", "colour_a2b", "colour_b2a", "face_a2b", "face_b2a", "recon_l1"}
    assert all(scores[k] > 0 for k in ("swd_a2b", "swd_b2a", "recon_l1"))
    assert all(0 <= scores[k] <= 1 for k in ("face_a2b", "face_b2a"))


# ----------------------------------------------------------------- schedule and proxy score
def test_final_phase_images_sets_the_last_stable_phase_only():
    phases = build_phases(8, 32, 100, final_phase_images=1000)
    assert [p.length for p in phases] == [100, 100, 100, 100, 1000]
    assert phases[-1].resolution == 32 and not phases[-1].fading and phases[-1].end == 1400
    assert [p.length for p in build_phases(8, 32, 100)] == [100] * 5


def test_proxy_scores_follow_the_translations():
    def smooth(x):
        return F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear")

    real = {"a": torch.rand(40, 3, 16, 16) * 2 - 1}
    real["b"] = smooth(torch.rand(40, 3, 16, 16) * 2 - 1)  # anime: flat regions; photos: fine texture

    class Fake:
        """Translator stand-in: `good` makes photos as flat as the anime set, else leaves them alone."""

        def __init__(self, good: bool) -> None:
            self.good = good

        def run(self, x, direction, cycle):
            out = smooth(x) if self.good and direction == "a2b" else x
            return out, x

        def reconstruct(self, x, domain):
            return x + 0.1

    good, bad = (proxy_scores(evaluate(real, Fake(flag), None, progress=False)) for flag in (True, False))
    assert good["swd_a2b"] < 0.5 * bad["swd_a2b"]
    assert good["swd_b2a"] == pytest.approx(bad["swd_b2a"])
    assert good["recon_l1"] == pytest.approx(0.1, abs=1e-6)


def test_every_variant_of_the_sweep_file_is_a_valid_config():
    load_tool("quality_run")
    proxy, sweep = load_tool("proxy_run"), load_tool("proxy_sweep")
    variants = sweep.read_variants(PRESET_DIR.parent / "tools" / "proxy_variants.txt")
    assert variants[0] == ("base", []) and len(variants) >= 10
    assert len({name for name, _ in variants}) == len(variants)
    for _, overrides in variants:
        cfg = load_config("twingan_cpu_64_v1", ["model.resolution=32", *proxy.PROXY_OVERRIDES, *overrides])
        assert cfg.model.resolution == 32 and cfg.train.final_phase_images == 1_000_000
