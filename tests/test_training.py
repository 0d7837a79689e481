"""The training loop with Twin-GAN: it learns, resumes exactly, stops cleanly, survives NaNs, runs on 2 ranks."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import die_with_parent, run_two_ranks, write_image_folder, write_preset

from twingan.checkpoint import load_checkpoint
from twingan.config import PRESET_DIR, LossConfig, load_config
from twingan.errors import UserError
from twingan.models.twingan import recipe as twingan_recipe
from twingan.train.run_log import RunLog
from twingan.models.schedule import Phase
from twingan.train.trainer import StopRequest, Trainer, TrainingDiverged

TINY = {
    "model": {"resolution": 8, "channel_base": 32, "max_channels": 16, "unet_max_resolution": 8},
    "loss": {"reconstruction_gan_min_resolution": 8},
    "train": {"batch_size": {4: 4, 8: 4}, "phase_images": 8, "log_every": 4, "sample_every": 1000,
              "checkpoint_every": 12, "keep_checkpoints": 10},
    "runtime": {"device": "cpu", "num_workers": 0},
    "data": {"verify": "header"},
}


def tiny_preset(tmp_path: Path, **sections) -> Path:
    """A YAML preset for a tiny 4 -> 8 px model on 8 + 8 synthetic pictures."""
    return write_preset(tmp_path, TINY, sections, image_size=24)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_few_hundred_steps_cut_the_reconstruction_loss(tmp_path):
    preset = tiny_preset(tmp_path, train={"start_resolution": 8, "phase_images": 1200, "lr": 5e-4,
                                          "checkpoint_every": 100_000})
    Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    recon = [m["reconstruction"] for m in metrics(tmp_path / "run")]
    assert len(recon) == 300
    start, end = sum(recon[:20]) / 20, sum(recon[-20:]) / 20
    assert end < 0.6 * start, (start, end)


def test_run_folder_holds_config_checkpoints_samples_and_logs(tmp_path):
    preset = tiny_preset(tmp_path)
    result = Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    run = tmp_path / "run"
    assert result.images_seen == 24 and result.checkpoint == run / "checkpoints" / "ckpt-000000000024.pt"
    assert load_config(run / "config.yaml") == load_config(preset)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000000000012.pt", "ckpt-000000000024.pt"]
    assert list((run / "samples").glob("grid-*.png")) and list((run / "tensorboard").iterdir())
    logged = metrics(run)
    assert [m["resolution"] for m in logged] == [4, 4, 8, 8, 8, 8]
    assert {"reconstruction", "semantic", "translation_gan", "d_translation", "d_penalty", "alpha", "lr",
            "images_per_second"} <= set(logged[0])
    assert "reconstruction_gan" not in logged[0] and "reconstruction_gan" in logged[-1]
    assert logged[2]["alpha"] == pytest.approx(0.5)


def test_keep_last_n_checkpoints(tmp_path):
    preset = tiny_preset(tmp_path, train={"checkpoint_every": 4, "keep_checkpoints": 2})
    Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "ckpt-000000000020.pt", "ckpt-000000000024.pt"]


@pytest.mark.parametrize("penalty_every", [1, 3], ids=["penalty_every_step", "lazy_penalty"])
def test_resume_gives_the_same_losses_as_an_uninterrupted_run(tmp_path, penalty_every):
    """With a lazy penalty the resume point (12 images, step 3) falls on a penalised step."""
    cfg = load_config(tiny_preset(tmp_path), [f"loss.penalty_every={penalty_every}"])
    Trainer(cfg, tmp_path / "full", progress=False).run()
    resumed = Trainer(cfg, tmp_path / "resumed", progress=False)
    resumed.resume(tmp_path / "full" / "checkpoints" / "ckpt-000000000012.pt")
    resumed.run()
    full_tail = [m for m in metrics(tmp_path / "full") if m["images_seen"] > 12]
    resumed_log = metrics(tmp_path / "resumed")
    assert len(full_tail) == len(resumed_log) == 3
    for a, b in zip(full_tail, resumed_log):
        assert a.keys() == b.keys()
        for key in ("reconstruction", "semantic", "translation_gan", "d_translation", "d_penalty"):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    final_full = load_checkpoint(tmp_path / "full")["net"]
    final_resumed = load_checkpoint(tmp_path / "resumed")["net"]
    for name, tensor in final_full.items():
        torch.testing.assert_close(tensor, final_resumed[name], rtol=1e-5, atol=1e-6)


def test_checkpoint_for_another_model_shape_is_refused(tmp_path):
    Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "run", progress=False).run()
    wider = load_config(tiny_preset(tmp_path, model={"max_channels": 8}))
    with pytest.raises(UserError, match="does not match the configured model"):
        Trainer(wider, tmp_path / "other", progress=False).resume(tmp_path / "run" / "checkpoints" /
                                                                  "ckpt-000000000024.pt")


def _nan_after(monkeypatch, first_bad_call: int, last_bad_call: float = math.inf) -> None:
    real = twingan_recipe.losses.generator_loss
    calls = {"n": 0}

    def sometimes_nan(logits, kind):
        calls["n"] += 1
        value = real(logits, kind)
        return value * float("nan") if first_bad_call <= calls["n"] <= last_bad_call else value

    monkeypatch.setattr(twingan_recipe.losses, "generator_loss", sometimes_nan)


def test_a_forced_nan_is_skipped_and_recorded(tmp_path, monkeypatch, caplog):
    _nan_after(monkeypatch, first_bad_call=9, last_bad_call=9)
    result = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "run", progress=False).run()
    assert result.skipped_steps == 1 and result.images_seen == 24
    assert load_checkpoint(result.checkpoint)["skipped_steps"] == 1
    assert all(math.isfinite(m["reconstruction"]) for m in metrics(tmp_path / "run"))
    assert any("step skipped" in r.message for r in caplog.records)


def test_persistent_nans_roll_back_then_stop_keeping_the_checkpoint(tmp_path, monkeypatch, caplog):
    _nan_after(monkeypatch, first_bad_call=20)
    trainer = Trainer(load_config(tiny_preset(tmp_path)), tmp_path / "run", progress=False)
    with pytest.raises(TrainingDiverged, match="last good checkpoint is .*ckpt-000000000012.pt"):
        trainer.run()
    assert any("rolled back" in r.message for r in caplog.records)
    assert load_checkpoint(tmp_path / "run")["images_seen"] == 12


def test_missing_batch_size_for_a_resolution_is_refused(tmp_path):
    cfg = load_config(tiny_preset(tmp_path), ["model.resolution=1024", "model.channel_base=256"])
    with pytest.raises(UserError, match=r"train.batch_size has no entry for resolution\(s\) \[1024\]"):
        Trainer(cfg, tmp_path / "run", progress=False)


@pytest.mark.parametrize("override, message", [
    ("model.resolution=100", "power of two"),
    ("train.start_resolution=16", "start_resolution 16 is above the final resolution 8"),
    ("model.channel_base=1", "leaves no channels"),
])
def test_impossible_model_settings_are_user_errors(tmp_path, override, message):
    with pytest.raises(UserError, match=message):
        Trainer(load_config(tiny_preset(tmp_path), [override]), tmp_path / "run", progress=False)


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "twingan", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=die_with_parent, **kwargs)


def test_sigterm_saves_a_loadable_checkpoint_and_exits_cleanly(tmp_path):
    # max_minutes only bounds a run nobody stops; the test waits for training, not for a clock.
    preset = tiny_preset(tmp_path, train={"phase_images": 100_000, "checkpoint_every": 100_000, "max_minutes": 30})
    run = tmp_path / "run"
    process = _cli("train", str(preset), "--run-dir", str(run), "--no-progress")
    deadline = time.monotonic() + 300
    while not (run / "metrics.jsonl").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[0]
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert "stopped by SIGTERM" in output and "Traceback" not in output
    state = load_checkpoint(run)
    assert state["images_seen"] > 0
    resumed = _cli("train", "--resume", str(run), f"train.max_images={state['images_seen'] + 8}", "--no-progress")
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert load_checkpoint(run)["images_seen"] == state["images_seen"] + 8


def test_a_stop_request_ends_the_run_after_its_step_with_a_checkpoint(tmp_path):
    preset = tiny_preset(tmp_path, train={"phase_images": 100_000, "checkpoint_every": 100_000})
    trainer = Trainer(load_config(preset), tmp_path / "run", progress=False)
    stop = StopRequest()
    stop.set("asked")
    result = trainer.run(stop)
    assert result.stopped_by == "asked" and result.images_seen == 4
    assert load_checkpoint(tmp_path / "run")["images_seen"] == 4


def test_train_cli_refuses_to_overwrite_a_run(tmp_path):
    preset = tiny_preset(tmp_path, train={"max_images": 4, "checkpoint_every": 4})
    first = _cli("train", str(preset), "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert first.wait(timeout=600) == 0
    second = _cli("train", str(preset), "--run-dir", str(tmp_path / "run"), "--no-progress")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 1 and output.strip().splitlines()[-1].startswith("Error: run folder")


def test_torchrun_two_processes_agree_on_the_weights(tmp_path):
    result = run_two_ranks(tmp_path, tiny_preset(tmp_path, train={"batch_size": {4: 2, 8: 2}}), "net", "discs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rank 0 of 2 agrees" in result.stdout and "rank 1 of 2 agrees" in result.stdout
    assert load_checkpoint(tmp_path / "run")["images_seen"] == 24


def test_ema_half_life_is_counted_in_images_with_rampup(tmp_path):
    trainer = Trainer(load_config(tiny_preset(tmp_path), ["train.ema_half_life=100"]), tmp_path / "run",
                      progress=False)
    live, averaged = next(trainer.recipe.net.parameters()), next(trainer.recipe.ema.parameters())
    start = averaged.detach().clone()
    with torch.no_grad():
        live.add_(1.0)
    trainer.recipe.update_ema(batch_images=100, images_seen=10_000)
    torch.testing.assert_close(averaged, start + 0.5)
    trainer.recipe.update_ema(batch_images=1, images_seen=20)
    torch.testing.assert_close(averaged, start + 0.5 + 0.5 * (1 - 0.5 ** (1 / 1.0)))


@pytest.mark.parametrize("preset", sorted(PRESET_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_preset_trains_a_first_batch(tmp_path, preset):
    write_image_folder(tmp_path / "a", 2, size=16)
    write_image_folder(tmp_path / "b", 2, size=16, seed=50)
    cfg = load_config(preset, [f"data.domain_a={tmp_path / 'a'}", f"data.domain_b={tmp_path / 'b'}",
                               "runtime.device=cpu", "runtime.num_workers=0", "train.max_images=1"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    result = trainer.run()
    assert result.images_seen == trainer.recipe.batch_size(trainer.phases[0])
    assert result.checkpoint is not None and result.checkpoint.exists()


def test_domain_switch_parameters_get_their_own_learning_rate(tmp_path):
    trainer = Trainer(load_config(tiny_preset(tmp_path), ["train.domain_switch_lr_multiplier=50"]),
                      tmp_path / "run", progress=False)
    recipe = trainer.recipe
    rest, switch = recipe.opt_g.param_groups
    assert switch["lr"] == pytest.approx(50 * rest["lr"])
    norms = [m for m in recipe.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {id(p) for p in switch["params"]} == {id(p) for m in norms for p in (m.weight, m.bias)}
    assert len(rest["params"]) + len(switch["params"]) == len(list(recipe.net.parameters()))


def test_discriminator_learning_rate_multiplier_scales_the_critics_first_step(tmp_path):
    """Adam's first step moves every parameter with a gradient by the lr itself, so the largest
    change of a critic weight after one step is the critics' lr: the shared one times the factor."""
    multiplier = 4.0
    overrides = [f"train.discriminator_lr_multiplier={multiplier}", "train.max_images=1"]
    trainer = Trainer(load_config(tiny_preset(tmp_path), overrides), tmp_path / "run", progress=False)
    recipe = trainer.recipe
    assert recipe.opt_d.param_groups[0]["lr"] == pytest.approx(multiplier * recipe.opt_g.param_groups[0]["lr"])
    before = [p.detach().clone() for p in recipe.discs.parameters()]
    trainer.run()
    moved = max(float((p.detach() - q).abs().max()) for p, q in zip(recipe.discs.parameters(), before))
    assert moved == pytest.approx(multiplier * trainer.cfg.train.lr, rel=1e-3)


def test_lr_decay_sets_every_optimiser_group_and_the_log(tmp_path):
    """Four steps of 4 images with the decay over 8 images from image 4: the rates at steps 2-4 are
    1, 0.5 and 0 times the lr; the multipliers of the domain switch and the critics are kept, and a
    step at rate 0 moves no critic weight. The log gives the rate at its row's image count."""
    overrides = ["train.lr_decay_start=4", "train.lr_decay_images=8", "train.max_images=16",
                 "train.discriminator_lr_multiplier=2", "train.log_every=1", "loss.penalty=none"]
    trainer = Trainer(load_config(tiny_preset(tmp_path), overrides), tmp_path / "run", progress=False)
    recipe, t = trainer.recipe, trainer.cfg.train
    seen, step = [], recipe.step

    def recording_step(reals, phase, images_seen):
        before = [p.detach().clone() for p in recipe.discs.parameters()]
        values = step(reals, phase, images_seen)
        critic_moved = any(not torch.equal(p, q) for p, q in zip(recipe.discs.parameters(), before))
        seen.append([g["lr"] for opt in (recipe.opt_g, recipe.opt_d) for g in opt.param_groups] + [critic_moved])
        return values

    recipe.step = recording_step
    trainer.run()
    rates = [1.0, 1.0, 0.5, 0.0]
    assert seen == [pytest.approx([t.lr * r, t.lr * r * t.domain_switch_lr_multiplier, 2 * t.lr * r, r > 0])
                    for r in rates]
    logged = [(row["images_seen"], row["lr"]) for row in metrics(tmp_path / "run")]
    assert logged == [(4, pytest.approx(t.lr)), (8, pytest.approx(t.lr / 2)), (12, 0.0), (16, 0.0)]


def test_translation_gan_a_weights_the_photo_critic_apart(tmp_path):
    """With the photo direction's weight at 0 and no other critic term, only the anime critic learns."""
    overrides = ["loss.translation_gan_a=0", "loss.reconstruction_gan=0", "loss.penalty=none", "train.max_images=4"]
    trainer = Trainer(load_config(tiny_preset(tmp_path), overrides), tmp_path / "run", progress=False)
    before = [[p.detach().clone() for p in critic.parameters()] for critic in trainer.recipe.discs]
    trainer.run()
    changed = [any(not torch.equal(p, q) for p, q in zip(critic.parameters(), old))
               for critic, old in zip(trainer.recipe.discs, before)]
    assert changed == [False, True]
    logged = metrics(tmp_path / "run")[-1]
    assert logged["translation_gan"] == pytest.approx(logged["translation_gan_a"] + logged["translation_gan_b"])
    assert logged["d_translation"] == pytest.approx(logged["d_translation_a"] + logged["d_translation_b"])


def test_translation_weights_default_to_the_shared_weight():
    assert twingan_recipe.translation_weights(LossConfig(translation_gan=3.0)) == (3.0, 3.0)
    assert twingan_recipe.translation_weights(LossConfig(translation_gan=3.0, translation_gan_a=1.0)) == (1.0, 3.0)


def test_lazy_penalty_falls_on_every_nth_step_with_n_times_the_weight(tmp_path, monkeypatch):
    """penalty_every 3 over six steps of 4 images: the steps at 0 and 12 images take the penalty,
    and the critics' loss is then 3 x 0.25 x the penalty; the other steps have no penalty term."""
    overrides = ["loss.penalty_every=3", "loss.translation_gan=0", "loss.reconstruction_gan=0"]
    trainer = Trainer(load_config(tiny_preset(tmp_path), overrides), tmp_path / "run", progress=False)
    critic_losses = []
    update = type(trainer.recipe.ctx).update

    def recording_update(ctx, total, optimizer, module, scaler, *args, **kwargs):
        if optimizer is trainer.recipe.opt_d:
            critic_losses.append(float(total.detach()))
        update(ctx, total, optimizer, module, scaler, *args, **kwargs)

    monkeypatch.setattr(type(trainer.recipe.ctx), "update", recording_update)
    trainer.run()
    rows = metrics(tmp_path / "run")
    assert [row["images_seen"] for row in rows if "d_penalty" in row] == [4, 16]
    expected = [3 * 0.25 * row["d_penalty"] if "d_penalty" in row else 0.0 for row in rows]
    assert critic_losses == pytest.approx(expected, rel=1e-5)
    assert expected[0] > 0


def test_logged_losses_are_averaged_over_the_steps_that_computed_them(tmp_path):
    log = RunLog(tmp_path)
    log.step({"reconstruction": 1.0, "d_penalty": 6.0}, images=4)
    log.step({"reconstruction": 3.0}, images=4)
    log.losses(8, Phase.fixed(8, 100), lr=1e-3)
    row = metrics(tmp_path)[-1]
    assert row["reconstruction"] == 2.0 and row["d_penalty"] == 6.0


def test_the_progress_bar_ends_where_max_minutes_stops_the_run(tmp_path):
    """Second new-user pass, item 3: the bar counted to the schedule's end (212k images for
    twingan_cpu_64, an ETA of 30 to 56 hours) although max_minutes stops the run in 30 minutes."""
    from types import SimpleNamespace

    trainer = Trainer(load_config(tiny_preset(tmp_path), ["train.max_minutes=1"]), tmp_path / "run", progress=False)
    trainer._started = time.monotonic() - 25  # 35 s left
    bar = SimpleNamespace(n=8, total=trainer.total_images, disable=False, format_dict={"rate": 0.1})
    trainer._aim_bar(bar)
    assert bar.total == 11  # 8 seen + 0.1 images/s for the 35 s left
    eta = (bar.total - bar.n) / bar.format_dict["rate"]
    assert eta <= 35
    fast = SimpleNamespace(n=8, total=trainer.total_images, disable=False, format_dict={"rate": 100.0})
    trainer._aim_bar(fast)
    assert fast.total == trainer.total_images  # the schedule ends first: its end stays


def test_a_second_training_into_a_busy_run_folder_is_refused_and_harms_nothing(tmp_path):
    """Second hostile pass, item 9: two trainings into one --run-dir both exited 0 and the
    checkpoint held the second's weights."""
    import fcntl

    from twingan.train.run_state import RUN_LOCK

    cfg = load_config(tiny_preset(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("the first run's\n")
    with open(run / RUN_LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(UserError, match="is being trained by another process"):
            Trainer(cfg, run, progress=False).run()
        assert (run / "config.yaml").read_text() == "the first run's\n"
    result = Trainer(cfg, tmp_path / "run2", progress=False).run()  # the lock goes with its holder
    assert result.images_seen == 24
