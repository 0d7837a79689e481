"""A folder with bad files still trains; a useless folder stops with a clear error up front."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import gradient_image, png_header_only, write_image_folder

from twingan.config import DataConfig
from twingan.data.dataset import DomainDataset, scan_domain
from twingan.data.loader import LoaderSettings, make_loader
from twingan.data.transforms import DeviceAugment, loader_transform, to_model_range
from twingan.errors import UserError


def make_messy_folder(root):
    write_image_folder(root, 4)
    (root / "zero.jpg").touch()
    (root / "text.png").write_text("hello")
    (root / "bomb.png").write_bytes(png_header_only(20_000, 20_000))
    truncated = (root / "img_000.png").read_bytes()[:300]
    (root / "truncated.png").write_bytes(truncated)


@pytest.mark.parametrize("verify, kept", [("full", 4), ("header", 5)])
def test_scan_skips_bad_files_and_summarises(tmp_path, caplog, verify, kept):
    make_messy_folder(tmp_path)
    with caplog.at_level(logging.INFO):
        result = scan_domain(tmp_path, "A", max_pixels=10_000_000, verify=verify, progress=False)
    assert len(result.paths) == kept
    assert len(result.skipped) == 8 - kept
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 8 - kept
    assert f"{kept} pictures, {8 - kept} skipped" in result.summary("A")


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "holds no"),
    (lambda p: p.write_text("x"), "is not a folder"),
    (lambda p: (p.mkdir(), (p / "bad.jpg").write_text("x")), "none of its 1 files"),
])
def test_useless_domain_folder_stops_with_clear_error(tmp_path, setup, message):
    folder = tmp_path / "photos"
    setup(folder)
    with pytest.raises(UserError, match=message) as info:
        scan_domain(folder, "A", max_pixels=10_000_000, progress=False)
    assert "domain A" in str(info.value)


def test_missing_domain_setting_names_the_key():
    with pytest.raises(UserError, match="data.domain_b"):
        scan_domain(None, "B", max_pixels=1, progress=False)


def test_file_that_goes_bad_after_scan_is_replaced(tmp_path, caplog):
    paths = write_image_folder(tmp_path, 3)
    dataset = DomainDataset(paths, loader_transform(DataConfig(), 16, train=False), max_pixels=10_000)
    paths[1].write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        first, second = dataset[1], dataset[1]
    torch.testing.assert_close(first, dataset[2])
    assert second.shape == (3, 16, 16)
    assert sum("replaced by another picture" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize("resize", ["squash", "crop"])
def test_loader_transform_shapes(resize):
    wide = gradient_image(64).resize((96, 48))
    cfg = DataConfig(resize=resize)
    for train in (True, False):
        out = loader_transform(cfg, 32, train=train)(wide)
        assert out.shape == (3, 32, 32) and out.dtype == torch.uint8


def test_eval_transform_is_deterministic_and_train_is_random():
    picture = gradient_image(64)
    cfg = DataConfig(random_crop=0.7)
    eval_t = loader_transform(cfg, 32, train=False)
    assert torch.equal(eval_t(picture), eval_t(picture))
    train_t = loader_transform(cfg, 32, train=True)
    torch.manual_seed(0)
    assert any(not torch.equal(train_t(picture), train_t(picture)) for _ in range(5))


def test_device_augment_range_and_effect():
    batch = torch.stack([loader_transform(DataConfig(), 32, train=False)(gradient_image(32, s)) for s in range(4)])
    plain = DeviceAugment(DataConfig(brightness=0, saturation=0, rotation=0))(batch)
    torch.testing.assert_close(plain, to_model_range(batch))
    torch.testing.assert_close(plain.add(1).mul(127.5).round().to(torch.uint8), batch)
    torch.manual_seed(0)
    jittered = DeviceAugment(DataConfig(brightness=0.2, saturation=0.5, rotation=15))(batch)
    assert jittered.shape == plain.shape and jittered.min() >= -1 and jittered.max() <= 1
    assert (jittered - plain).abs().mean() > 0.02


def test_brightness_is_additive_within_bound():
    flat = torch.full((64, 3, 8, 8), 128, dtype=torch.uint8)
    out = DeviceAugment(DataConfig(brightness=32 / 255, saturation=0, rotation=0))(flat)
    shift = (out - to_model_range(flat)).mean(dim=(1, 2, 3)) / 2
    assert shift.abs().max() <= 32 / 255 + 1e-5 and shift.std() > 0.01


def test_grayscale_pipeline_has_one_channel(tmp_path):
    paths = write_image_folder(tmp_path, 2)
    cfg = DataConfig(grayscale=True)
    dataset = DomainDataset(paths, loader_transform(cfg, 16), max_pixels=10_000, grayscale=True)
    batch = torch.stack([dataset[0], dataset[1]])
    assert batch.shape == (2, 1, 16, 16)
    assert DeviceAugment(cfg)(batch).shape == (2, 1, 16, 16)


def _batches(paths, seed, count, start=0, workers=0, transform=None):
    transform = transform or (lambda image: torch.tensor(image.getpixel((0, 0))))
    dataset = DomainDataset(paths, transform, max_pixels=10_000)
    loader = make_loader(dataset, LoaderSettings(batch_size=2, seed=seed, num_workers=workers), start=start)
    batches = iter(loader)
    return [next(batches) for _ in range(count)]


def test_resumed_stream_gives_the_same_batches(tmp_path):
    paths = write_image_folder(tmp_path, 6)
    full = _batches(paths, seed=1, count=9)
    resumed = _batches(paths, seed=1, count=4, start=10)
    for a, b in zip(full[5:], resumed):
        torch.testing.assert_close(a, b)
    first_epoch, second_epoch = torch.cat(full[:3]), torch.cat(full[3:6])
    assert not torch.equal(first_epoch, second_epoch)
    assert sorted(first_epoch.tolist()) == sorted(second_epoch.tolist())
    other_domain = torch.cat(_batches(paths, seed=2, count=3))
    assert not torch.equal(first_epoch, other_domain)


def test_random_augmentation_is_reproducible_with_or_without_workers(tmp_path):
    paths = write_image_folder(tmp_path, 4, size=40)
    transform = loader_transform(DataConfig(random_crop=0.6), 16)
    in_process = _batches(paths, seed=5, count=3, transform=transform)
    in_workers = _batches(paths, seed=5, count=3, transform=transform, workers=2)
    for a, b in zip(in_process, in_workers):
        torch.testing.assert_close(a, b)
    again = _batches(paths, seed=6, count=3, transform=transform)
    assert any(not torch.equal(a, b) for a, b in zip(in_process, again))


def test_ranks_split_the_stream(tmp_path):
    dataset = DomainDataset(write_image_folder(tmp_path, 5), lambda image: image.getpixel((0, 0))[0],
                            max_pixels=10_000)
    rank0 = iter(make_loader(dataset, LoaderSettings(batch_size=1, seed=3, world_size=2, rank=0)))
    rank1 = iter(make_loader(dataset, LoaderSettings(batch_size=1, seed=3, world_size=2, rank=1)))
    single = iter(make_loader(dataset, LoaderSettings(batch_size=1, seed=3)))
    interleaved = [int(next(it)) for _ in range(4) for it in (rank0, rank1)]
    assert interleaved == [int(next(single)) for _ in range(8)]


def test_loader_with_workers_keeps_them_alive(tmp_path):
    paths = write_image_folder(tmp_path, 4)
    dataset = DomainDataset(paths, loader_transform(DataConfig(), 16), max_pixels=10_000)
    loader = make_loader(dataset, LoaderSettings(batch_size=2, num_workers=1))
    assert loader.persistent_workers and loader.prefetch_factor == 4
    batches = iter(loader)
    assert {tuple(next(batches).shape) for _ in range(5)} == {(2, 3, 16, 16)}


def test_domain_smaller_than_a_batch_still_fills_batches(tmp_path):
    dataset = DomainDataset(write_image_folder(tmp_path, 1), loader_transform(DataConfig(), 16), max_pixels=10_000)
    assert next(iter(make_loader(dataset, LoaderSettings(batch_size=3)))).shape == (3, 3, 16, 16)


@pytest.mark.integration
def test_real_selfie2anime_folders_scan_cleanly(shared_data):
    for name, folder in (("A", "trainA"), ("B", "trainB")):
        result = scan_domain(shared_data / "selfie2anime" / folder, name, max_pixels=10_000_000,
                             verify="header", progress=False)
        assert len(result.paths) == 3000 and not result.skipped
