"""The training step's speed options change the speed, not the maths; bf16 is chosen by the hardware.

Fused Adam, the multi-tensor EMA, channels-last and the one-sync loss check (stepping.py, recipe.py)
are meant to give the same numbers as the plain per-tensor code, within float rounding: a few
steps of each from one seed must agree. Tolerances: fused Adam and oneDNN's channels-last kernels
sum in another order. Losses agree to 1e-4. Weights: single weights with a near-zero gradient
may differ by up to Adam's reach (lr a step), since Adam turns their rounding noise into full
steps; on average they agree to 2e-6 with the critics alone in channels-last, and to 1e-4 with
every network in it (measured 2.7e-5 for the critics after 6 steps: the generator's batch norm
in channels-last rounds otherwise, and the critics see those fakes). A real change (another
update rule, a missed tensor) moves the mass of the weights by far more.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from test_training import metrics, tiny_preset

from twingan.models import losses, stepping
from twingan.checkpoint import load_checkpoint
from twingan.config import load_config
from twingan.models.cyclegan import recipe as cyclegan_recipe
from twingan.models.twingan import recipe as twingan_recipe
from twingan.train.trainer import Trainer

TOLERANCE = 1e-4
LOSSES = {"reconstruction", "semantic", "translation_gan", "d_translation", "d_penalty", "nce"}


def _plain_adam(params, device, **settings) -> torch.optim.Adam:
    return torch.optim.Adam(params, foreach=False, fused=False, **settings)


@pytest.mark.parametrize(("layout", "weight_mean_tolerance"), [("critics", 2e-6), ("true", 1e-4)])
def test_the_speed_options_give_the_plain_codes_losses_and_weights(tmp_path, monkeypatch, layout,
                                                                   weight_mean_tolerance):
    sections = {"loss": {"nce": 1.0, "penalty_every": 2}}
    fast = Trainer(load_config(tiny_preset(tmp_path / "f", **sections), [f"runtime.channels_last={layout}"]),
                   tmp_path / "fast", progress=False)
    assert fast.recipe.opt_g.defaults["fused"] and fast.recipe.opt_d.defaults["fused"]
    conv = fast.recipe.discs[0].blocks["8"][0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    generator_conv = fast.recipe.net.generator.blocks["8"].conv0.conv.weight
    assert generator_conv.is_contiguous() == (layout == "critics")
    fast.run()
    monkeypatch.setattr(twingan_recipe, "adam", _plain_adam)
    plain = Trainer(load_config(tiny_preset(tmp_path / "p", **sections), ["runtime.channels_last=false"]),
                    tmp_path / "plain", progress=False)
    assert not plain.recipe.opt_g.defaults["fused"]
    plain.run()

    fast_log, plain_log = metrics(tmp_path / "fast"), metrics(tmp_path / "plain")
    assert len(fast_log) == len(plain_log) == 6
    for a, b in zip(fast_log, plain_log):
        assert a.keys() == b.keys()
        for key in LOSSES & a.keys():
            assert a[key] == pytest.approx(b[key], rel=TOLERANCE, abs=TOLERANCE), (a["images_seen"], key)
    fast_state, plain_state = load_checkpoint(tmp_path / "fast"), load_checkpoint(tmp_path / "plain")
    adam_reach = 2 * fast.cfg.train.lr * fast_log[-1]["images_seen"] / 4  # Adam moves a weight ~lr a step
    for part in ("net", "ema", "discs", "nce"):
        differences = torch.cat([(fast_state[part][name].float() - tensor.float()).abs().flatten()
                                 for name, tensor in plain_state[part].items()])
        # Weights whose gradient is about zero (a conv bias before batch norm) get rounding noise,
        # which Adam turns into steps of up to lr: single weights may differ by that, the mass not.
        assert differences.max() <= adam_reach, (part, float(differences.max()))
        assert differences.mean() <= weight_mean_tolerance, (part, float(differences.mean()))


def test_the_multi_tensor_ema_is_the_per_tensor_average(tmp_path):
    trainer = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "run", progress=False)
    recipe = trainer.recipe
    with torch.no_grad():
        for p in recipe.net.parameters():
            p.add_(torch.randn_like(p))
        for b in recipe.net.buffers():
            b.add_(1)
    before = copy.deepcopy(recipe.ema)
    recipe.update_ema(batch_images=4, images_seen=1_000)
    keep = 0.5 ** (4 / min(trainer.cfg.train.ema_half_life, 1_000 * (trainer.cfg.train.ema_rampup or float("inf"))))
    for old, new, live in zip(before.parameters(), recipe.ema.parameters(), recipe.net.parameters()):
        torch.testing.assert_close(new, old.lerp(live, 1 - keep), rtol=1e-6, atol=1e-7)
        assert not torch.equal(new, old)
    for new, live in zip(recipe.ema.buffers(), recipe.net.buffers()):
        assert torch.equal(new, live)


def test_a_resumed_run_keeps_the_fused_optimiser_of_an_old_checkpoint(tmp_path):
    """Checkpoints written before fused Adam hold fused=None in their param groups."""
    cfg = load_config(tiny_preset(tmp_path))
    first = Trainer(cfg, tmp_path / "run", progress=False)
    state = first.state_dict()
    for key in ("opt_g", "opt_d"):
        for group in state[key]["param_groups"]:
            group["fused"], group["foreach"] = None, None
    resumed = Trainer(cfg, tmp_path / "run2", progress=False)
    resumed.load_state_dict(state, "old checkpoint")
    assert all(g["fused"] for opt in (resumed.recipe.opt_g, resumed.recipe.opt_d) for g in opt.param_groups)


def test_cyclegan_keeps_its_fused_adam(tmp_path):
    import test_cyclegan

    trainer = Trainer(load_config(test_cyclegan.tiny_preset(tmp_path)), tmp_path / "run", progress=False)
    assert trainer.recipe.opt_g.defaults["fused"] and trainer.recipe.opt_d.defaults["fused"]
    assert cyclegan_recipe.adam is stepping.adam


def test_one_sync_loss_check_averages_and_refuses_non_finite_terms():
    ctx = stepping.StepContext(torch.device("cpu"), stepping.distributed.DistInfo())
    values = ctx.finite({"b": torch.tensor(2.0, dtype=torch.bfloat16), "a": torch.tensor([0.5])})
    assert values == {"a": 0.5, "b": 2.0}
    assert ctx.finite({"a": torch.tensor(1.0), "b": torch.tensor(float("nan"))}) is None
    assert ctx.finite({"a": torch.tensor(float("inf"))}) is None
    assert ctx.finite({}) == {}


@pytest.mark.parametrize(("amx", "avx512_bf16", "expected"), [(True, False, "bf16"), (False, True, "bf16"),
                                                              (False, False, "fp32")])
def test_auto_precision_follows_the_cpu(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert stepping.resolve_precision("auto", torch.device("cpu")) == expected
    for fixed in ("fp32", "bf16", "fp16"):
        assert stepping.resolve_precision(fixed, torch.device("cpu")) == fixed


def test_the_run_names_the_precision_it_chose(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    with caplog.at_level(logging.INFO, logger="twingan.train.trainer"):
        trainer = Trainer(load_config(tiny_preset(tmp_path), ["runtime.precision=auto"]), tmp_path / "run",
                          progress=False)
    assert trainer.precision == "fp32" and trainer.recipe.ctx.precision == "fp32"
    assert any("precision fp32 (runtime.precision=auto" in r.getMessage() for r in caplog.records)


def test_the_critic_step_reusing_the_generator_pass_scores_equals_fresh_critic_calls(tmp_path):
    """The D step scores the translations and reconstructions with the generator pass's critic
    outputs instead of calling the critics again on detached copies: same gradients, and none of
    the D step's reaches the generator."""
    trainer = Trainer(load_config(tiny_preset(tmp_path), ["loss.penalty=none", "train.start_resolution=8"]),
                      tmp_path / "run", progress=False)
    recipe, w = trainer.recipe, trainer.cfg.loss
    phase = trainer.phases[-1]
    res, alpha = phase.resolution, phase.alpha(0)
    reals = [torch.rand(4, 3, res, res) * 2 - 1 for _ in range(2)]
    critics_before = copy.deepcopy(recipe.discs)
    seen: list[list[torch.Tensor]] = [[], []]
    hooks = [critic.register_forward_pre_hook(lambda _m, args, d=d: seen[d].append(args[0].detach().clone()))
             for d, critic in enumerate(recipe.discs)]
    generator_grads: list[torch.Tensor] = []
    update_ema = recipe.update_ema

    def between_the_updates(*args) -> None:  # after the generator's update, before the D step
        generator_grads.extend(p.grad.clone() for p in recipe.net.parameters() if p.grad is not None)
        update_ema(*args)

    recipe.update_ema = between_the_updates
    assert recipe.step(reals, phase, 0) is not None
    for hook in hooks:
        hook.remove()

    into = twingan_recipe.translation_weights(w)
    total = 0
    for d, critic in enumerate(critics_before):
        translated, reconstructed, real = seen[d]  # generator pass: translation, reconstruction; D step: real
        assert torch.equal(real, reals[d])
        real_logits = critic(real, res, alpha)
        total = total + into[d] * losses.discriminator_loss(real_logits, critic(translated, res, alpha), w.gan)
        total = total + w.reconstruction_gan * losses.discriminator_loss(real_logits, critic(reconstructed, res, alpha),
                                                                         w.gan)
    total.backward()
    for fresh, reused in zip(critics_before.parameters(), recipe.discs.parameters()):
        torch.testing.assert_close(reused.grad, fresh.grad, rtol=1e-5, atol=1e-6)
    after = [p.grad for p in recipe.net.parameters() if p.grad is not None]
    assert generator_grads and len(after) == len(generator_grads)
    assert all(torch.equal(a, b) for a, b in zip(after, generator_grads))


def test_the_train_command_prints_the_precision_it_chose(tmp_path):
    """The CLI showed no INFO line at all (tqdm's logging redirect came before basicConfig)."""
    from click.testing import CliRunner

    from twingan.cli import main

    result = CliRunner().invoke(main, ["train", str(tiny_preset(tmp_path)), "--run-dir", str(tmp_path / "run"),
                                       "--no-progress", "runtime.precision=fp32", "train.max_images=4"])
    assert result.exit_code == 0, result.output
    assert "precision fp32 (runtime.precision=fp32 on CPU" in result.output
