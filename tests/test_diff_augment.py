"""DiffAugment: the paper's operations, gradients through them, and every critic call of a Twin-GAN
step going through them when loss.diffaugment is on."""

from __future__ import annotations

import pytest
import torch
from test_training import tiny_preset

from twingan.config import load_config
from twingan.models import diff_augment as augment_module
from twingan.models.diff_augment import colour, cutout, diff_augment, translation
from twingan.models.twingan import recipe as recipe_module
from twingan.models.twingan.networks import Discriminator
from twingan.train.trainer import Trainer


def test_translation_moves_whole_pictures_by_at_most_an_eighth_and_fills_with_zero():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    moved = translation(x)
    assert moved.shape == x.shape and moved.sum(dim=(1, 2, 3)).eq(1).all()  # the pixel is never lost at 2 px
    where = moved[:, 0].flatten(1).argmax(1)
    rows, cols = where // 16, where % 16
    assert (rows - 8).abs().max() <= 2 and (cols - 8).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # each picture draws its own shift
    edge = translation(torch.ones(256, 1, 16, 16))
    assert edge.eq(0).any() and edge.eq(1).any() and edge.ne(0).logical_and(edge.ne(1)).sum() == 0


def test_cutout_blanks_one_square_of_half_the_side_and_leaves_the_rest():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 16, 16) + 1.0
    out = cutout(x)
    blank = out.eq(0).all(dim=1)
    assert torch.equal(out[~blank.unsqueeze(1).expand_as(out)], x[~blank.unsqueeze(1).expand_as(x)])
    for mask in blank:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols)  # a rectangle
        assert 4 <= len(rows) <= 8 and 4 <= len(cols) <= 8  # half the side, clipped at most to half of it


def test_colour_changes_each_picture_by_its_own_draw():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 8, 8) * 2 - 1
    out = colour(x)
    shift = (out - x).mean(dim=(1, 2, 3))
    assert out.shape == x.shape and shift.std() > 0.05
    # A flat grey has no saturation or contrast to change: only the brightness shift, within +-0.5.
    flat = colour(torch.full((256, 3, 4, 4), 0.2))
    per_picture = flat.flatten(1)
    assert torch.allclose(per_picture, per_picture[:, :1].expand_as(per_picture), atol=1e-6)
    assert per_picture.min() >= -0.3 - 1e-6 and per_picture.max() <= 0.7 + 1e-6 and per_picture.std() > 0.2


def test_the_policy_order_is_kept():
    x = torch.ones(4, 3, 16, 16)
    torch.manual_seed(0)
    cut_last = diff_augment(x, ["color", "cutout"])
    torch.manual_seed(0)
    cut_first = diff_augment(x, ["cutout", "color"])
    assert cut_last.eq(0).all(dim=1).any() and not cut_first.eq(0).all(dim=1).any()


def test_gradients_reach_the_pictures_through_every_operation():
    torch.manual_seed(0)
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_()
    diff_augment(x, ["color", "translation", "cutout"]).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum(dim=(1, 2, 3)).gt(0).all()


def test_an_empty_policy_is_the_identity():
    x = torch.rand(2, 3, 8, 8)
    assert diff_augment(x, []) is x


def test_off_in_the_published_recipe_and_the_cpu_presets():
    for preset in (None, "twingan_cpu_64", "twingan_cpu_128"):
        assert load_config(preset).loss.diffaugment == []


@pytest.mark.parametrize("policy", [["translation", "cutout"], []])
def test_every_critic_call_of_a_step_sees_augmented_pictures(tmp_path, monkeypatch, policy):
    """Real pictures, translations and reconstructions, in the generator's and the critics' passes
    and the penalty: each critic input is a fresh output of diff_augment when the policy is on."""
    augmented: list[torch.Tensor] = []
    seen: list[bool] = []

    def spy_augment(x, chosen):
        assert list(chosen) == policy
        out = augment_module.diff_augment(x, chosen)
        assert (out is x) == (not policy)
        augmented.append(out)
        return out

    forward = Discriminator.forward

    def spy_forward(self, x, resolution, alpha=1.0):
        seen.append(any(x is a for a in augmented))
        return forward(self, x, resolution, alpha)

    monkeypatch.setattr(recipe_module, "diff_augment", spy_augment)
    monkeypatch.setattr(Discriminator, "forward", spy_forward)
    cfg = load_config(tiny_preset(tmp_path, loss={"diffaugment": policy, "penalty_every": 1},
                                  train={"start_resolution": 8, "max_images": 4}))
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.run()
    # translations and reconstructions of both domains, both domains' real pictures, the penalty's pictures
    assert len(seen) >= 8 and all(seen)
