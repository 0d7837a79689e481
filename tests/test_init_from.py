"""`twingan train --init-from`: a run starts from a trained model's encoder and generator and grows
them; the generator waits while the new critics warm up."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import write_image_folder
from test_training import tiny_preset

from twingan.bundled import load_bundled
from twingan.checkpoint import load_checkpoint, save_checkpoint
from twingan.cli import main
from twingan.config import config_to_dict, load_config
from twingan.errors import ConfigError, UserError
from twingan.models.twingan.recipe import check_config, fade_reals
from twingan.train.trainer import Trainer

GROWN = {"model": {"resolution": 16, "unet_max_resolution": 8},
         "train": {"start_resolution": 8, "batch_size": {8: 4, 16: 4}}}
"""The tiny 8 px preset grown to 16 px: the same widths below 16 px, no 16 px link (as twingan_cpu_128)."""


@pytest.fixture
def trained_8px(tmp_path):
    """A tiny 8 px run's folder, trained for 24 images."""
    Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "small", progress=False).run()
    return tmp_path / "small"


def _grown(tmp_path, **sections) -> Trainer:
    merged = {key: {**GROWN.get(key, {}), **sections.get(key, {})} for key in {*GROWN, *sections}}
    return Trainer(load_config(tiny_preset(tmp_path, **merged)), tmp_path / "grown", progress=False)


def test_init_from_loads_exactly_the_trained_weights_and_leaves_only_the_new_blocks_new(tmp_path, trained_8px):
    trainer = _grown(tmp_path)
    before = {k: v.clone() for k, v in trainer.recipe.net.state_dict().items()}
    trainer.init_from(str(trained_8px))
    source = load_checkpoint(trained_8px)["ema"]
    for net in (trainer.recipe.net, trainer.recipe.ema):
        state = net.state_dict()
        for key, value in source.items():
            assert torch.equal(state[key], value), key
        new = [k for k in state if k not in source]
        assert new and all(".16." in k or k.endswith(".16") for k in new), new
        assert all(torch.equal(state[k], before[k]) for k in new)


def test_grown_model_at_alpha_zero_draws_what_the_trained_one_drew(tmp_path, trained_8px):
    trainer = _grown(tmp_path)
    trainer.init_from(str(trained_8px))
    small = Trainer(load_config(tmp_path / "small" / "config.yaml"), tmp_path / "unused", progress=False)
    small.load_state_dict(load_checkpoint(trained_8px), "source")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        for domain in (0, 1):
            grown = trainer.recipe.ema.eval()
            latent, skips = grown.encoder(x, domain, 16, 0.0)
            out = grown.generator(latent, skips, 1 - domain, 16, 0.0, source=domain)
            trained = small.recipe.ema.eval()
            latent, skips = trained.encoder(F.avg_pool2d(x, 2), domain, 8)
            expected = trained.generator(latent, skips, 1 - domain, 8, source=domain)
            torch.testing.assert_close(out, F.interpolate(expected, scale_factor=2, mode="nearest"),
                                       rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_a_residual_top_block_draws_on_the_trained_picture_upsampled(tmp_path, trained_8px, alpha):
    """model.residual_from=16: the 16 px picture is the 8 px model's, upsampled bilinearly, plus
    alpha times the new block's to_rgb, and the trained encoder layers see their own from_rgb of
    the downsampled picture plus alpha times the new block's features through a gate. The added
    parts start at zero, so the grown model starts as the trained one at any alpha; opened, they
    add their part in proportion to alpha."""
    trainer = _grown(tmp_path, model={"residual_from": 16})
    trainer.init_from(str(trained_8px))
    small = Trainer(load_config(tmp_path / "small" / "config.yaml"), tmp_path / "unused", progress=False)
    small.load_state_dict(load_checkpoint(trained_8px), "source")
    grown = trainer.recipe.ema.eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1

    def drawn() -> torch.Tensor:
        latent, skips = grown.encoder(x, 0, 16, alpha)
        return grown.generator(latent, skips, 1, 16, alpha, source=0)

    with torch.no_grad():
        trained = small.recipe.ema.eval()
        latent, skips = trained.encoder(F.avg_pool2d(x, 2), 0, 8)
        expected = F.interpolate(trained.generator(latent, skips, 1, 8, source=0), scale_factor=2, mode="bilinear")
        torch.testing.assert_close(drawn(), expected, rtol=1e-4, atol=1e-5)
        for p in [grown.generator.to_rgb["16"].weight, grown.encoder.residual_gates["16"].weight]:
            p.normal_()
        assert (alpha == 0.0) == torch.allclose(drawn(), expected, rtol=1e-4, atol=1e-5)


def test_residual_from_above_the_trained_size_is_no_difference(tmp_path, trained_8px):
    assert _grown(tmp_path, model={"residual_from": 16}).init_from(str(trained_8px))
    with pytest.raises(UserError, match="model.residual_from=0 \\(this run: 8\\)"):
        _grown(tmp_path, model={"residual_from": 8}).init_from(str(trained_8px))


def _saved(trainer: Trainer, folder) -> str:
    """`trainer`'s state, untrained, as a checkpoint in `folder`."""
    trainer.state.run_dir = folder
    trainer.save()
    return str(folder)


def test_a_larger_model_is_refused_in_one_line(tmp_path):
    large = _saved(_grown(tmp_path, train={"start_resolution": 16, "batch_size": {16: 4}}), tmp_path / "large")
    small = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "small", progress=False)
    with pytest.raises(UserError, match="16 px model, larger than this run's model.resolution 8") as info:
        small.init_from(large)
    assert "\n" not in str(info.value)


def test_a_model_that_stopped_growing_is_refused(tmp_path):
    halfway = _saved(_grown(tmp_path), tmp_path / "halfway")  # 0 images: still at 8 px of its 16
    trainer = _grown(tmp_path, model={"resolution": 32}, train={"batch_size": {8: 4, 16: 4, 32: 4}})
    with pytest.raises(UserError, match="stopped growing at 8 px, before its final 16 px"):
        trainer.init_from(halfway)


def test_a_start_above_the_source_resolution_is_refused(tmp_path, trained_8px):
    trainer = _grown(tmp_path, train={"start_resolution": 16})
    with pytest.raises(UserError, match="set train.start_resolution=8"):
        trainer.init_from(str(trained_8px))


def test_no_critic_warm_up_is_warned_about(tmp_path, trained_8px, caplog):
    trainer = _grown(tmp_path)
    trainer.init_from(str(trained_8px))
    assert "train.generator_warmup_images is 0" in caplog.text
    caplog.clear()
    _grown(tmp_path, train={"generator_warmup_images": 8}).init_from(str(trained_8px))
    assert "generator_warmup_images" not in caplog.text


def test_a_model_of_another_family_is_refused(tmp_path):
    cyclegan = load_config(None, ["model.name=cyclegan"])
    save_checkpoint({"model": "cyclegan", "config": config_to_dict(cyclegan)},
                    tmp_path / "cg", 0, keep=1)
    trainer = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="holds a cyclegan model; this run trains twingan"):
        trainer.init_from(str(tmp_path / "cg"))


@pytest.mark.parametrize("model, named", [
    ({"max_channels": 8}, "model.max_channels=16 (this run: 8)"),
    ({"skip_highpass_from": 8}, "model.skip_highpass_from=0 (this run: 8)"),
])
def test_other_model_settings_are_refused_naming_the_key(tmp_path, trained_8px, model, named):
    trainer = _grown(tmp_path, model=model)
    with pytest.raises(UserError, match="trained with other model settings") as info:
        trainer.init_from(str(trained_8px))
    assert named in str(info.value)


def test_a_translation_link_limit_above_the_trained_size_is_no_difference(tmp_path, trained_8px):
    trainer = _grown(tmp_path, model={"unet_max_resolution": 16, "translation_link_max_resolution": 8})
    assert {".".join(k.split(".")[:3]) for k in trainer.init_from(str(trained_8px))} >= {"generator.blocks.16"}


def test_the_top_blocks_may_be_wider_than_halving_gives(tmp_path, trained_8px):
    trainer = _grown(tmp_path, model={"min_channels": 16})  # widens 16 px only (8 there without it)
    assert trainer.init_from(str(trained_8px))


def test_an_unknown_source_names_the_bundled_models(tmp_path):
    trainer = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match=r"no such checkpoint, run folder or bundled model \(bundled: selfie2anime-64"):
        trainer.init_from("selfie2anime-512")


def test_cli_init_from_trains_and_refuses_it_with_resume(tmp_path, trained_8px):
    preset = tiny_preset(tmp_path, model=GROWN["model"], train={**GROWN["train"], "max_images": 8})
    result = CliRunner().invoke(main, ["train", str(preset), "--init-from", str(trained_8px),
                                       "--run-dir", str(tmp_path / "grown"), "--no-progress"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "grown")
    assert state["images_seen"] == 8 and state["config"]["model"]["resolution"] == 16
    both = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "grown"), "--init-from", str(trained_8px)])
    assert both.exit_code == 1 and "not a preset, --model or --init-from" in both.output


def test_generator_waits_while_the_judges_warm_up(tmp_path):
    trainer = Trainer(load_config(tiny_preset(tmp_path, train={"generator_warmup_images": 8, "max_images": 8},
                                              loss={"nce": 1.0})),
                      tmp_path / "run", progress=False)
    recipe = trainer.recipe
    # The net's parameters; its batch-norm running statistics follow the pictures during the warm-up.
    tensors = {"net": lambda: list(recipe.net.parameters()), "ema": lambda: list(recipe.ema.state_dict().values()),
               "discs": lambda: list(recipe.discs.parameters()), "nce": lambda: list(recipe.nce.parameters())}
    before = {name: [t.detach().clone() for t in get()] for name, get in tensors.items()}

    def changed(name: str) -> bool:
        return any(not torch.equal(a, b) for a, b in zip(before[name], tensors[name]()))

    trainer.run()
    assert changed("discs") and changed("nce") and not changed("net") and not changed("ema")
    trainer.cfg.train.max_images = 16
    trainer.total_images = 16
    trainer.run()
    assert changed("net") and changed("ema")


def test_the_bundled_64px_model_grows_into_twingan_cpu_128(tmp_path):
    write_image_folder(tmp_path / "a", 4, size=32, seed=0)
    write_image_folder(tmp_path / "b", 4, size=32, seed=9)
    cfg = load_config("twingan_cpu_128", [f"data.domain_a={tmp_path / 'a'}", f"data.domain_b={tmp_path / 'b'}",
                                          "train.eval_every=null", "data.verify=header"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    fresh = trainer.init_from("selfie2anime-64")
    assert {".".join(k.split(".")[:3]) for k in fresh} == {
        "encoder.from_rgb.128", "encoder.blocks.128", "encoder.residual_gates.128", "generator.blocks.128",
        "generator.to_rgb.128"}
    bundled = load_bundled("selfie2anime-64")[1]["ema"]
    state = trainer.recipe.ema.state_dict()
    assert set(state) - set(fresh) == set(bundled)
    assert all(torch.equal(state[k], bundled[k]) for k in bundled)


def test_layer_lr_multipliers_hold_the_trained_layers_while_the_new_block_learns(tmp_path, trained_8px):
    trainer = _grown(tmp_path, train={"layer_lr_multipliers": {8: 0.0}, "max_images": 24})
    trainer.init_from(str(trained_8px))
    before = {k: v.clone() for k, v in trainer.recipe.net.named_parameters()}
    trainer.run()
    after = dict(trainer.recipe.net.named_parameters())
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert all(".16." in k for k in moved), moved
    assert {"generator.to_rgb.16.weight", "encoder.from_rgb.16.conv.weight"} <= moved


def test_layer_lr_multipliers_must_name_sizes_of_the_model():
    cfg = load_config("twingan_cpu_128", ["train.layer_lr_multipliers={256: 0.1, 48: 0.1, 64: 0.1}"])
    with pytest.raises(ConfigError, match=r"train.layer_lr_multipliers: \[256, 48\] are not layer sizes"):
        check_config(cfg)


def test_a_run_resumes_under_other_layer_factors_keeping_each_tensors_adam_moments(tmp_path):
    first = Trainer(load_config(tiny_preset(tmp_path, train={"max_images": 24})), tmp_path / "first", progress=False)
    first.run()
    moments = {name: first.recipe.opt_g.state[p]["exp_avg"].clone()
               for name, p in first.recipe.generator_tensors if p in first.recipe.opt_g.state}
    assert any(name.startswith("generator.to_rgb.8") for name in moments)
    cfg = load_config(tiny_preset(tmp_path, train={"layer_lr_multipliers": {4: 0.5}}))
    second = Trainer(cfg, tmp_path / "second", progress=False)
    second.load_state_dict(load_checkpoint(tmp_path / "first"), "first")
    assert len(second.recipe.opt_g.param_groups) == 4
    resumed = {name: second.recipe.opt_g.state[p]["exp_avg"]
               for name, p in second.recipe.generator_tensors if p in second.recipe.opt_g.state}
    assert resumed.keys() == moments.keys()
    assert all(torch.equal(resumed[name], moments[name]) for name in moments)
    # A checkpoint from before the layer factors existed (no key) resumes tensor by tensor as well.
    old = load_checkpoint(tmp_path / "first")
    del old["layer_lr_multipliers"]
    third = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "third", progress=False)
    third.load_state_dict(old, "old")
    assert all(torch.equal(third.recipe.opt_g.state[p]["exp_avg"], moments[name])
               for name, p in third.recipe.generator_tensors if name in moments)


def test_fading_reals_are_upsampled_as_the_generator_upsamples_its_lower_picture():
    x = torch.rand(2, 3, 8, 8)
    pooled = F.avg_pool2d(x, 2)
    torch.testing.assert_close(fade_reals(x, 0.0), F.interpolate(pooled, scale_factor=2, mode="nearest"))
    bilinear = F.interpolate(pooled, scale_factor=2, mode="bilinear")
    torch.testing.assert_close(fade_reals(x, 0.0, residual=True), bilinear)
    assert fade_reals(x, 1.0, residual=True) is x
