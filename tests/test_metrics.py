"""Metric maths: KID, FID (against the closed form), IS, SWD, PSNR/SSIM; `twingan eval` without Inception weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import test_cyclegan
import test_training
import torch
from click.testing import CliRunner
from conftest import gradient_image, write_image_folder
from scipy import linalg

from twingan.checkpoint import best_checkpoint, drop_best_after, load_checkpoint
from twingan.cli import main
from twingan.config import load_config
from twingan.errors import UserError
from twingan.evaluation.metrics import (InceptionFeatures, colour_distance, detail_ratio, fid, inception_score,
                                        kid, psnr_ssim, swd)
from twingan.train.trainer import Trainer, held_out_swd


def gaussian(n: int, mean: np.ndarray, std: np.ndarray, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(size=(n, len(mean))) * std + mean)


def test_kid_of_a_set_against_its_own_distribution_is_about_zero_and_grows_with_noise():
    """(KID is unbiased for independent samples; a set against an exact copy of itself comes out
    negative, because every picture meets its twin.)"""
    real = gaussian(300, np.zeros(16), np.ones(16), 0)
    same, _ = kid(real, gaussian(300, np.zeros(16), np.ones(16), 1), subsets=20)
    noise = torch.from_numpy(np.random.default_rng(2).normal(size=real.shape))
    noisy = [kid(real, real + noise * s, subsets=20)[0] for s in (0.5, 1.0)]
    assert abs(same) < 0.05 * noisy[1]
    assert noisy[0] < noisy[1]


def test_kid_adapts_its_subset_size_to_small_sets():
    small = gaussian(100, np.zeros(8), np.ones(8), 0)
    mean, std = kid(small, small + 1.0)
    assert mean > 0 and std < 1e-3 * mean  # each subset is the whole small set, so they all agree


def test_fid_matches_the_closed_form():
    a = gaussian(4000, np.zeros(4), np.array([1.0, 2.0, 0.5, 1.0]), 0)
    b = gaussian(4000, np.array([1.0, 0.0, -1.0, 0.5]), np.array([1.5, 1.0, 0.5, 2.0]), 1)
    mu_a, mu_b = a.mean(0).numpy(), b.mean(0).numpy()
    cov_a, cov_b = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert fid(a, b) == pytest.approx(expected, rel=1e-4)
    population = 1 + 0 + 1 + 0.25 + (0.5**2 + 1**2 + 0 + 1**2)  # |mu|^2 + sum (s_a - s_b)^2 for diagonal covariances
    assert fid(a, b) == pytest.approx(population, rel=0.1)


def test_inception_score_is_one_for_identical_predictions_and_k_for_k_sure_classes():
    logits = torch.zeros(100, 10)
    assert inception_score(logits)[0] == pytest.approx(1.0)
    sure = torch.full((100, 10), -30.0)
    sure[torch.arange(100), torch.arange(100) % 10] = 30.0
    assert inception_score(sure, splits=1)[0] == pytest.approx(10.0, rel=1e-3)


def pictures(seeds: range) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(gradient_image(32, s), np.float32)).permute(2, 0, 1)
                        for s in seeds]) / 127.5 - 1


def test_swd_is_small_for_the_same_distribution_and_grows_with_noise():
    real, other = pictures(range(0, 64)), pictures(range(100, 164))
    levels = swd(real, other)
    assert len(levels) == 2  # 32 and 16 px
    generator = torch.Generator().manual_seed(0)
    noisy = [np.mean(swd(real, (other + torch.randn(other.shape, generator=generator) * s).clamp(-1, 1)))
             for s in (0.1, 0.4)]
    assert np.mean(levels) < noisy[0] < noisy[1]


def test_colour_distance_is_zero_for_the_same_pictures_and_sees_a_tint_swd_cannot():
    real = pictures(range(0, 32))
    assert colour_distance(real, real) == 0.0
    assert colour_distance(real, real.flip(0)) == pytest.approx(0.0, abs=1e-9)  # order does not matter
    tint = torch.tensor([-0.15, 0.1, -0.15]).view(1, 3, 1, 1)  # a green cast
    distances = [colour_distance(real, (real + k * tint).clamp(-1, 1)) for k in (0.5, 1.0)]
    assert 1.0 < distances[0] < distances[1]
    other = pictures(range(100, 132))  # other pictures of the same kind: the sampling noise
    assert np.mean(swd(real, (real + tint).clamp(-1, 1))) < 1.2 * np.mean(swd(real, other))  # SWD: noise level
    assert colour_distance(real, other) < distances[0] / 3
    with pytest.raises(ValueError, match="RGB"):
        colour_distance(real[:, :1], real[:, :1])


def test_detail_ratio_is_one_for_the_same_sharpness_below_for_blur_above_for_noise():
    real = pictures(range(0, 16))
    assert detail_ratio(real, real) == pytest.approx(1.0)
    blurred = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1, count_include_pad=False)
    noisy = (real + 0.2 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert detail_ratio(real, blurred) < 0.7 and detail_ratio(real, noisy) > 1.5


def test_psnr_and_ssim_on_known_pairs():
    x = torch.full((2, 3, 16, 16), 0.5)
    psnr, ssim = psnr_ssim(x, x + 0.1)
    assert psnr == pytest.approx(20.0, abs=1e-4)  # float32 0.1
    assert ssim < 1.0
    noise = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert psnr_ssim(noise, noise)[1] == pytest.approx(1.0, abs=1e-6)


def test_missing_inception_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TWINGAN_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(UserError, match="pt_inception-2015-12-05"):
        InceptionFeatures(None)
    with pytest.raises(UserError, match="not found"):
        InceptionFeatures(tmp_path / "nothing.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(UserError, match="is not a PyTorch .pt/.pth file. KID, FID and IS need"):
        InceptionFeatures(tmp_path / "junk.pth")
    torch.save({"w": torch.ones(1)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="cannot be used"):
        InceptionFeatures(tmp_path / "other.pth")


def test_identity_eval_runs_the_other_metrics_without_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("TWINGAN_INCEPTION_WEIGHTS", raising=False)
    write_image_folder(tmp_path / "a", 6, size=40, seed=0)
    write_image_folder(tmp_path / "b", 6, size=40, seed=50)
    (tmp_path / "b" / "broken.png").write_bytes(b"nope")
    result = CliRunner().invoke(main, ["eval", "--identity", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                                       "--size", "32", "-o", str(tmp_path / "r.json"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "KID, FID and IS are left out" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    a2b = report["directions"]["a2b"]
    assert "kid_mean" not in a2b and report["inception"].startswith("KID, FID and IS need")
    assert len(a2b["swd"]) == 2 and a2b["swd_mean"] > 0 and a2b["cycle_psnr"] is None
    assert a2b["colour"] > 0 and a2b["detail_ratio"] > 0
    assert report["pictures"] == {"a": 6, "b": 6} and "broken.png" in report["skipped"][0]
    assert (tmp_path / "r.md").read_text().startswith("| direction |")


@pytest.mark.parametrize("model", ["twingan", "cyclegan"])
def test_eval_of_a_checkpoint_reports_round_trips(tmp_path, model):
    module = test_training if model == "twingan" else test_cyclegan
    Trainer(load_config(module.tiny_preset(tmp_path)), tmp_path / "run", progress=False).run()
    result = CliRunner().invoke(main, ["eval", "-c", str(tmp_path / "run"), "--a", str(tmp_path / "a"),
                                       "--b", str(tmp_path / "b"), "-o", str(tmp_path / "r.json"), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    for direction in ("a2b", "b2a"):
        values = report["directions"][direction]
        assert values["cycle_psnr"] > 0 and 0 < values["recon_ssim"] <= 1 and values["swd_mean"] > 0
    assert "| photo -> anime |" in result.output


def test_eval_takes_a_checkpoint_or_identity_not_both(tmp_path):
    result = CliRunner().invoke(main, ["eval", "--a", str(tmp_path), "--b", str(tmp_path), "--identity",
                                       "-c", str(tmp_path)])
    assert result.exit_code == 1 and "either --checkpoint or --identity" in result.output


def test_training_evaluates_on_held_out_pictures(tmp_path):
    preset = test_training.tiny_preset(tmp_path, train={"eval_every": 12, "eval_pictures": 2})
    trainer = Trainer(load_config(preset), tmp_path / "run", progress=False)
    held = [set(paths) for paths in trainer.held_out]
    assert [len(h) for h in held] == [2, 2] and not held[0] & set(trainer.scans[0].paths)
    assert len(trainer.scans[0].paths) == 6
    trainer.run()
    lines = [json.loads(line) for line in (tmp_path / "run" / "eval.jsonl").read_text().splitlines()]
    assert [line["images_seen"] for line in lines] == [12, 24]
    assert lines[-1]["resolution"] == 8 and lines[-1]["a2b"]["swd_mean"] > 0 and lines[-1]["b2a"]["cycle_psnr"] > 0
    too_many = test_training.tiny_preset(tmp_path, train={"eval_every": 12, "eval_pictures": 4})
    with pytest.raises(UserError, match="eval_pictures=4"):
        Trainer(load_config(too_many), tmp_path / "run2", progress=False)


def test_training_keeps_its_best_checkpoint_by_held_out_swd(tmp_path):
    """Evaluations at the final 8 px (12 to 24 images) choose the best; the newest-N rule leaves
    it alone; a resume from 12 images drops a later best and the resumed run finds the same one."""
    preset = test_training.tiny_preset(tmp_path, train={"eval_every": 4, "eval_pictures": 2, "keep_checkpoints": 2})
    result = Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "eval.jsonl").read_text().splitlines()]
    final = [row for row in rows if row["resolution"] == 8]
    assert [row["images_seen"] for row in final] == [12, 16, 20, 24]
    scores = [held_out_swd(row) for row in final]
    best_at = max(row["images_seen"] for row, score in zip(final, scores) if score == min(scores))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert result.best == checkpoints / f"best-{best_at:012d}.pt"
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted(
        {result.best.name, "ckpt-000000000012.pt", "ckpt-000000000024.pt"})
    assert load_checkpoint(result.best)["images_seen"] == best_at

    resumed = Trainer(load_config(preset), tmp_path / "run", progress=False)
    resumed.resume(checkpoints / "ckpt-000000000012.pt")
    assert best_checkpoint(checkpoints) == (result.best if best_at == 12 else None)
    assert resumed.run().best == result.best

    drop_best_after(checkpoints, best_at - 1)
    assert best_checkpoint(checkpoints) is None


def test_keep_best_off_writes_no_best_checkpoint(tmp_path):
    preset = test_training.tiny_preset(tmp_path, train={"eval_every": 4, "eval_pictures": 2, "keep_best": False})
    result = Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    assert result.best is None and not list((tmp_path / "run" / "checkpoints").glob("best-*"))


def test_swd_works_on_pictures_smaller_than_its_patches():
    """A run stopped at 4 px is evaluated at 4 px (second new-user pass, item 2: it raised
    `random_ expects 'from' to be less than 'to'`)."""

    x = torch.rand(6, 3, 4, 4) * 2 - 1
    same = swd(x, x)
    other = swd(x, torch.rand(6, 3, 4, 4) * 2 - 1)
    assert len(same) == 1 and same[0] == pytest.approx(0.0, abs=1e-9)
    assert other[0] > 0.01
