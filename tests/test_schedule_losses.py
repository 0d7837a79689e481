"""Progressive schedule arithmetic and the GAN objectives on toy critics."""

from __future__ import annotations

import pytest
import torch

from twingan.models import losses
from twingan.models.twingan.recipe import fade_reals
from twingan.models.schedule import build_phases, lr_factor, phase_at


def test_phases_grow_with_fade_then_stable():
    phases = build_phases(4, 16, 100)
    assert [(p.resolution, p.fading, p.start) for p in phases] == [
        (4, False, 0), (8, True, 100), (8, False, 200), (16, True, 300), (16, False, 400)]
    assert phase_at(phases, 150).alpha(150) == pytest.approx(0.5)
    assert phase_at(phases, 250).alpha(250) == 1.0
    assert phase_at(phases, 10_000) is phases[-1]


@pytest.mark.parametrize("start, final", [(3, 16), (4, 12), (32, 16)])
def test_impossible_schedules_are_refused(start, final):
    with pytest.raises(ValueError):
        build_phases(start, final, 10)


def test_lr_factor_is_constant_then_falls_linearly_to_zero():
    assert [lr_factor(n, None, 100) for n in (0, 10_000)] == [1.0, 1.0]
    assert [lr_factor(n, 1000, 100) for n in (0, 1000, 1025, 1050, 1100, 5000)] == [1.0, 1.0, 0.75, 0.5, 0.0, 0.0]


def test_fade_reals_blends_towards_the_coarse_picture():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    coarse = fade_reals(x, 0.0)
    assert torch.equal(coarse[0, 0, :2, :2], torch.full((2, 2), 2.5))
    assert torch.equal(fade_reals(x, 1.0), x)
    torch.testing.assert_close(fade_reals(x, 0.25), 0.25 * x + 0.75 * coarse)


@pytest.mark.parametrize("kind", ["nonsaturating", "hinge", "lsgan"])
def test_losses_reward_the_right_side(kind):
    confident_real, confident_fake = torch.full((4,), 3.0), torch.full((4,), -3.0)
    good_d = losses.discriminator_loss(confident_real, confident_fake, kind)
    bad_d = losses.discriminator_loss(confident_fake, confident_real, kind)
    assert good_d < bad_d
    assert losses.generator_loss(confident_real, kind) < losses.generator_loss(confident_fake, kind)


def test_unknown_loss_kind_is_refused():
    with pytest.raises(ValueError):
        losses.generator_loss(torch.zeros(2), "wasserstein-ish")


def test_r1_matches_the_analytic_gradient():
    weight = torch.tensor([3.0, 4.0])
    real = torch.randn(5, 2)
    penalty = losses.r1_penalty(lambda x: x @ weight, real)
    torch.testing.assert_close(penalty, torch.tensor(0.5 * 25.0))


def test_dragan_is_zero_for_unit_slope_and_differentiable():
    weight = torch.tensor([0.6, 0.8], requires_grad=True)
    penalty = losses.dragan_penalty(lambda x: x @ weight, torch.randn(5, 2))
    torch.testing.assert_close(penalty, torch.tensor(0.0), atol=1e-6, rtol=0)
    steep = torch.tensor([3.0, 4.0], requires_grad=True)
    penalty = losses.gradient_penalty("dragan", lambda x: x @ steep, torch.randn(5, 2))
    torch.testing.assert_close(penalty, torch.tensor(16.0))
    penalty.backward()
    assert steep.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["dragan", "r1"])
def test_a_patch_critics_penalty_constrains_its_mean_score(kind):
    """Repeating a critic's score over 128 cells (what a patch critic's global logit does) must not
    change the penalty: the losses average the cells, so the penalty must too."""
    weight, real = torch.tensor([3.0, 4.0]), torch.randn(5, 2)
    torch.manual_seed(1)
    one = losses.gradient_penalty(kind, lambda x: x @ weight, real)
    torch.manual_seed(1)
    many = losses.gradient_penalty(kind, lambda x: (x @ weight)[:, None].expand(-1, 128), real)
    torch.testing.assert_close(many, one)
    assert one > 1.0


def test_wgan_gp_still_sums_a_patch_critics_scores():
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    torch.manual_seed(1)
    sums = losses.wgan_gp_penalty(lambda x: x[:, :1].expand(-1, 2), real, fake)
    torch.testing.assert_close(sums, torch.tensor(1.0))


def test_no_penalty_is_zero():
    assert losses.gradient_penalty("none", lambda x: x.sum(1), torch.randn(3, 2)) == 0
