"""CycleGAN baseline: reference-faithful networks, pool, schedule, loss switches, training through the shared loop."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from conftest import load_tool, run_two_ranks, write_preset

from twingan.models import losses
from twingan.checkpoint import load_checkpoint
from twingan.cli import main
from twingan.config import PRESET_DIR, CycleGANModelConfig, load_config
from twingan.errors import UserError
from twingan.models.cyclegan.image_pool import ImagePool
from twingan.models.cyclegan.networks import (PatchDiscriminator, ResnetGenerator, UnetGenerator,
                                              build_discriminator, build_generator, patch_grid_size)
from twingan.models.cyclegan.recipe import GAN_KINDS, lr_factor
from twingan.models.schedule import Phase
from twingan.train.trainer import Trainer

TINY = {
    "model": {"name": "cyclegan", "resolution": 16, "resnet_blocks": 1, "generator_channels": 4,
              "discriminator_channels": 4, "discriminator_layers": 2},
    "train": {"batch_size": 2, "epochs": 1, "decay_epochs": 2, "epoch_images": 8, "pool_size": 3,
              "log_every": 2, "sample_every": 8, "checkpoint_every": 8, "keep_checkpoints": 10},
    "runtime": {"device": "cpu", "num_workers": 0},
    "data": {"verify": "header"},
}


def tiny_preset(tmp_path: Path, **sections) -> Path:
    """A YAML preset for a tiny 16 px CycleGAN on 8 + 8 synthetic pictures."""
    return write_preset(tmp_path, TINY, sections, image_size=20)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------- networks
@pytest.mark.parametrize("blocks", [6, 9])
@pytest.mark.parametrize("size", [32, 64])
def test_resnet_generator_keeps_the_size_and_range(blocks, size):
    net = ResnetGenerator(3, 3, channels=8, blocks=blocks)
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 3, size, size) and out.abs().max() <= 1
    assert sum(1 for m in net.modules() if type(m).__name__ == "ResnetBlock") == blocks


@pytest.mark.parametrize(("downs", "size"), [(5, 32), (6, 64), (7, 128)])
def test_unet_generator_reaches_one_pixel_and_back(downs, size):
    net = UnetGenerator(1, 1, downs=downs, channels=4)
    assert net(torch.randn(2, 1, size, size)).shape == (2, 1, size, size)


def test_unet_resolution_must_fit_the_downsamplings():
    with pytest.raises(ValueError, match="multiple of 2\\^model.unet_downs"):
        build_generator(CycleGANModelConfig(generator="unet", unet_downs=8, resolution=128), 3)


@pytest.mark.parametrize(("size", "layers", "grid"), [(256, 3, 30), (128, 3, 14), (64, 3, 6), (64, 2, 14)])
def test_patchgan_output_grid(size, layers, grid):
    net = PatchDiscriminator(3, channels=4, layers=layers)
    assert patch_grid_size(size, layers) == grid
    assert net(torch.randn(1, 3, size, size)).shape == (1, 1, grid, grid)


def test_patchgan_with_three_layers_sees_70_by_70_patches():
    # Instance norm mixes in whole-picture statistics; frozen batch norm leaves only the convolutions' reach.
    net = PatchDiscriminator(1, channels=2, layers=3, norm="batch").eval()
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    net(x)[0, 0, 7, 7].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_weights_start_as_normal_002():
    net = build_discriminator(CycleGANModelConfig(resolution=64), 3)
    weights = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(m.bias is None or not m.bias.any() for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_instance_norm_convs_keep_bias_and_batch_norm_convs_drop_it():
    instance = ResnetGenerator(3, 3, channels=4, blocks=1, norm="instance")
    batch = ResnetGenerator(3, 3, channels=4, blocks=1, norm="batch")
    inner = [m for m in instance.modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert inner.bias is not None
    assert [m for m in batch.modules() if isinstance(m, torch.nn.Conv2d)][1].bias is None


# ----------------------------------------------------------------- pool, schedule, losses
def test_pool_returns_new_images_until_full_then_past_ones_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).reshape(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)
    past_returned = 0
    for step in range(400):
        new = torch.full((1, 1, 1, 1), 100.0 + step)
        out = pool.query(new)
        if out.item() != new.item():
            past_returned += 1
            assert out.item() < new.item()
    assert 160 < past_returned < 240
    assert len(pool.images) == 4


def test_pool_of_size_zero_passes_through_and_state_round_trips():
    assert torch.equal(ImagePool(0).query(torch.ones(2, 1, 1, 1)), torch.ones(2, 1, 1, 1))
    pool = ImagePool(2)
    pool.query(torch.randn(3, 1, 2, 2))
    copy = ImagePool(2)
    copy.load_state_dict(pool.state_dict(), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(pool.images, copy.images))
    with pytest.raises(ValueError, match="holds 2 pictures"):
        ImagePool(3).load_state_dict(pool.state_dict(), torch.device("cpu"))


def test_learning_rate_is_constant_then_decays_linearly_per_epoch():
    rule = [lr_factor(epoch * 10, 10, epochs=100, decay_epochs=100) for epoch in range(200)]
    assert rule[0] == rule[99] == 1.0
    assert rule[100] == pytest.approx(1 - 1 / 101) and rule[199] == pytest.approx(1 - 100 / 101)
    assert lr_factor(999, 10, 100, 100) == 1.0 and lr_factor(1000, 10, 100, 100) < 1.0
    assert all(a >= b for a, b in zip(rule, rule[1:]))


def gan_loss(prediction: torch.Tensor, target_is_real: bool, kind: str) -> torch.Tensor:
    """The reference's GANLoss: MSE to 1/0 (lsgan), BCE with logits (vanilla), -/+ mean (wgangp)."""
    if kind == "lsgan":
        return torch.nn.functional.mse_loss(prediction, torch.full_like(prediction, float(target_is_real)))
    if kind == "vanilla":
        target = torch.full_like(prediction, float(target_is_real))
        return torch.nn.functional.binary_cross_entropy_with_logits(prediction, target)
    return -prediction.mean() if target_is_real else prediction.mean()


def recipe_losses(real: torch.Tensor, fake: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's term on `fake` and the discriminator's, as the recipe computes them."""
    real_term, fake_term = losses.discriminator_terms(real, fake, GAN_KINDS[kind])
    return losses.generator_loss(fake, GAN_KINDS[kind]), 0.5 * (real_term + fake_term)


@pytest.mark.parametrize("kind", ["lsgan", "vanilla", "wgangp"])
def test_gan_loss_prefers_the_right_sign(kind):
    high, low = torch.full((1, 1, 2, 2), 1.0), torch.zeros(1, 1, 2, 2)
    assert recipe_losses(low, high, kind)[0] < recipe_losses(low, low, kind)[0]
    assert recipe_losses(high, low, kind)[1] < recipe_losses(high, high, kind)[1]


@pytest.mark.parametrize("kind", ["lsgan", "vanilla", "wgangp"])
def test_the_shared_losses_are_the_references_gan_loss(kind):
    real, fake = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 3
    g, d = recipe_losses(real, fake, kind)
    torch.testing.assert_close(g, gan_loss(fake, True, kind), rtol=0, atol=1e-6)
    torch.testing.assert_close(d, 0.5 * (gan_loss(real, True, kind) + gan_loss(fake, False, kind)), rtol=0, atol=1e-6)


# ----------------------------------------------------------------- steps
def _trainer(tmp_path: Path, *overrides: str, run: str = "run") -> Trainer:
    return Trainer(load_config(tiny_preset(tmp_path), list(overrides)), tmp_path / run, progress=False)


def _reals(seed: int = 0, n: int = 2, size: int = 16, channels: int = 3) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(n, channels, size, size, generator=generator) * 2 - 1 for _ in range(2)]


@pytest.mark.parametrize(("override", "removed"), [
    ("loss.cycle_a=0", {"cycle_a"}), ("loss.cycle_b=0", {"cycle_b"}),
    ("loss.identity=0", {"identity_a", "identity_b"}), ("loss.gan=lsgan", set())])
def test_each_loss_switch_removes_its_term_and_its_work(tmp_path, override, removed):
    full, switched = _trainer(tmp_path, run="full"), _trainer(tmp_path, override, run="switched")
    calls = {"full": 0, "switched": 0}
    for name, trainer in (("full", full), ("switched", switched)):
        for gen in trainer.recipe.gens:
            gen.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls[name] + o.shape[0]))
    full_terms = set(full.recipe.step(_reals(), full.phases[0], 0))
    switched_terms = set(switched.recipe.step(_reals(), switched.phases[0], 0))
    assert full_terms - switched_terms == removed
    per_term = {"cycle_a": 2, "cycle_b": 2, "identity_a": 2, "identity_b": 2}
    assert calls["full"] - calls["switched"] == sum(per_term[t] for t in removed)


TINY_PHASE = Phase(16, False, 0, 24)


def test_wgangp_adds_the_gradient_penalty(tmp_path):
    values = _trainer(tmp_path, "loss.gan=wgangp").recipe.step(_reals(), TINY_PHASE, 0)
    assert {"d_a_penalty", "d_b_penalty"} <= set(values)
    assert "d_a_penalty" not in _trainer(tmp_path, run="lsgan").recipe.step(_reals(), TINY_PHASE, 0)


def test_stacked_calls_give_the_same_losses_as_separate_calls(tmp_path):
    trainer = _trainer(tmp_path)
    recipe = trainer.recipe
    real_a, real_b = _reals()
    stacked, _, _ = recipe._generator_terms(real_a, real_b)
    recipe.stack_calls = False
    separate, _, _ = recipe._generator_terms(real_a, real_b)
    for key in stacked:
        torch.testing.assert_close(stacked[key], separate[key], rtol=1e-5, atol=1e-6)


def test_our_step_does_the_reference_loops_maths(tmp_path):
    reference = load_tool("bench_cyclegan_reference")
    trainer = _trainer(tmp_path, "train.batch_size=1", "model.resnet_blocks=2")
    random.seed(0)
    batches = [_reals(seed, n=1) for seed in range(2)]
    first, second = reference.compare(trainer, batches, 2)
    assert first < 1e-5 and second < 1e-3


def test_a_few_hundred_steps_lower_the_cycle_loss(tmp_path):
    preset = tiny_preset(tmp_path, model={"generator_channels": 8, "resnet_blocks": 2},
                         train={"batch_size": 4, "epochs": 300, "decay_epochs": 0, "epoch_images": 4,
                                "log_every": 4, "checkpoint_every": 100_000, "sample_every": 100_000})
    Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    cycle = [m["cycle_a"] + m["cycle_b"] for m in metrics(tmp_path / "run")]
    assert len(cycle) == 300
    start, end = sum(cycle[:20]) / 20, sum(cycle[-20:]) / 20
    assert end < 0.6 * start, (start, end)


# ----------------------------------------------------------------- the shared loop
def test_run_folder_logs_decaying_lr_and_keeps_checkpoints(tmp_path):
    result = _trainer(tmp_path).run()
    run = tmp_path / "run"
    assert result.images_seen == 24
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "ckpt-000000000008.pt", "ckpt-000000000016.pt", "ckpt-000000000024.pt"]
    assert list((run / "samples").glob("grid-*.png")) and list((run / "tensorboard").iterdir())
    logged = metrics(run)
    assert {"gan_ab", "gan_ba", "cycle_a", "cycle_b", "identity_a", "identity_b", "d_a", "d_b"} <= set(logged[0])
    lrs = {m["images_seen"]: m["lr"] for m in logged}
    assert lrs[2] == lrs[6] == pytest.approx(2e-4)
    assert lrs[10] == pytest.approx(2e-4 * (1 - 1 / 3)) and lrs[18] == pytest.approx(2e-4 * (1 - 2 / 3))
    assert load_checkpoint(result.checkpoint)["model"] == "cyclegan"


def test_resume_in_the_decay_phase_gives_the_same_losses_and_lr(tmp_path):
    _trainer(tmp_path, run="full").run()
    resumed = _trainer(tmp_path, run="resumed")
    resumed.resume(tmp_path / "full" / "checkpoints" / "ckpt-000000000016.pt")
    assert resumed.recipe.learning_rate(resumed.counters.images_seen) == pytest.approx(2e-4 / 3)
    assert len(resumed.recipe.pools[0].images) == 3
    resumed.run()
    full_tail = [m for m in metrics(tmp_path / "full") if m["images_seen"] > 16]
    resumed_log = metrics(tmp_path / "resumed")
    assert len(full_tail) == len(resumed_log) == 4
    for a, b in zip(full_tail, resumed_log):
        for key in ("gan_ab", "cycle_a", "identity_b", "d_a", "d_b", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    assert resumed.recipe.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 / 3)


def test_a_forced_nan_is_skipped(tmp_path, monkeypatch):
    real, calls = losses.discriminator_terms, {"n": 0}

    def nan_once(real_logits, fake_logits, kind):
        calls["n"] += 1
        real_term, fake_term = real(real_logits, fake_logits, kind)
        return (real_term * float("nan") if calls["n"] == 2 else real_term), fake_term

    monkeypatch.setattr(losses, "discriminator_terms", nan_once)
    result = _trainer(tmp_path).run()
    assert result.skipped_steps == 1 and result.images_seen == 24


def test_torchrun_two_processes_agree_on_the_weights(tmp_path):
    result = run_two_ranks(tmp_path, tiny_preset(tmp_path, train={"batch_size": 1, "decay_epochs": 0}), "gens", "discs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rank 0 of 2 agrees" in result.stdout and "rank 1 of 2 agrees" in result.stdout
    assert load_checkpoint(tmp_path / "run")["images_seen"] == 8


def test_grayscale_training_runs_on_one_channel(tmp_path):
    trainer = _trainer(tmp_path, "data.grayscale=true", "train.epochs=0", "train.decay_epochs=1")
    trainer.run()
    assert trainer.recipe.gens[0].model[1].in_channels == 1
    assert load_checkpoint(tmp_path / "run")["image_channels"] == 1


def test_a_twingan_checkpoint_is_refused_for_cyclegan(tmp_path):
    from test_training import tiny_preset as twingan_preset
    Trainer(load_config(twingan_preset(tmp_path)), tmp_path / "twin", progress=False).run()
    with pytest.raises(UserError, match="holds a twingan model, not cyclegan"):
        _trainer(tmp_path).resume(tmp_path / "twin" / "checkpoints" / "ckpt-000000000024.pt")


def test_impossible_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="multiple of 4"):
        _trainer(tmp_path, "model.resolution=18")
    with pytest.raises(UserError, match="too small for a PatchGAN"):
        _trainer(tmp_path, "model.resolution=8", "model.discriminator_layers=3")
    with pytest.raises(UserError, match="nothing to train"):
        _trainer(tmp_path, "train.epochs=0", "train.decay_epochs=0")


def test_cli_trains_cyclegan_with_the_model_flag(tmp_path):
    preset = tiny_preset(tmp_path)
    result = CliRunner().invoke(main, ["train", str(preset), "--model", "cyclegan", "--run-dir",
                                       str(tmp_path / "cli"), "--no-progress", "train.decay_epochs=0"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "cli")["images_seen"] == 8


def test_model_flag_picks_the_published_cyclegan_defaults():
    result = CliRunner().invoke(main, ["config", "--model", "cyclegan"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["model"]["resnet_blocks"] == 9 and shown["train"]["pool_size"] == 50
    assert shown["loss"] == {"gan": "lsgan", "cycle_a": 10.0, "cycle_b": 10.0, "identity": 0.5, "gp_weight": 10.0}


def test_cyclegan_presets_load_as_cyclegan():
    for preset in PRESET_DIR.glob("cyclegan_*.yaml"):
        assert load_config(preset).model.name == "cyclegan"
