"""`twingan translate` and the Translator API: files, folders, globs, grids, faces, both models, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from conftest import gradient_image, write_image_folder
from PIL import Image

from twingan.cli import main
from twingan.config import DataConfig, load_config
from twingan.data.pictures import resize_for_model, to_tensor
from twingan.data.transforms import loader_transform, to_model_range
from twingan.errors import UserError
from twingan.infer import face_paste
from twingan.infer.face_paste import face_mask, paste_faces
from twingan.train.trainer import Trainer
from twingan.infer.translator import Translator

import test_cyclegan
import test_training


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained run per model: Twin-GAN at 8 px, CycleGAN at 16 px."""
    runs = {}
    for name, module in (("twingan", test_training), ("cyclegan", test_cyclegan)):
        tmp = tmp_path_factory.mktemp(name)
        Trainer(load_config(module.tiny_preset(tmp)), tmp / "run", progress=False).run()
        runs[name] = tmp / "run"
    return runs


def invoke(*args: str):
    return CliRunner().invoke(main, ["translate", *args])


def pictures(folder: Path, n: int = 3, size: int = 40) -> list[Path]:
    return write_image_folder(folder, n, size=size)


@pytest.mark.parametrize("model", ["twingan", "cyclegan"])
@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_one_file_becomes_one_picture_of_the_trained_size(tmp_path, checkpoints, model, direction):
    source = pictures(tmp_path / "in", 1)[0]
    result = invoke(str(source), "-c", str(checkpoints[model]), "-o", str(tmp_path / "out.png"),
                    "--direction", direction)
    assert result.exit_code == 0, result.output
    size = Translator.from_checkpoint(checkpoints[model]).resolution
    assert Image.open(tmp_path / "out.png").size == (size, size)
    assert "translated 1 of 1 picture" in result.output


def test_folder_keeps_names_and_subfolders_and_is_deterministic(tmp_path, checkpoints):
    pictures(tmp_path / "in")
    pictures(tmp_path / "in" / "sub", 2)
    for out in ("out1", "out2"):
        result = invoke(str(tmp_path / "in"), "-c", str(checkpoints["twingan"]), "-o", str(tmp_path / out),
                        "--batch-size", "2", "--no-progress")
        assert result.exit_code == 0, result.output
    names = sorted(p.relative_to(tmp_path / "out1").as_posix() for p in (tmp_path / "out1").rglob("*.*"))
    assert names == sorted(p.relative_to(tmp_path / "in").as_posix() for p in (tmp_path / "in").rglob("*.*"))
    for name in names:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out1" / name)),
                              np.asarray(Image.open(tmp_path / "out2" / name)))


def test_glob_grid_and_cycle(tmp_path, checkpoints):
    pictures(tmp_path / "in", 3)
    pattern = str(tmp_path / "in" / "*.png")
    assert invoke(pattern, "-c", str(checkpoints["cyclegan"]), "-o", str(tmp_path / "grid"), "--grid").exit_code == 0
    assert invoke(pattern, "-c", str(checkpoints["cyclegan"]), "-o", str(tmp_path / "cyc"), "--cycle").exit_code == 0
    grid = Image.open(next((tmp_path / "grid").iterdir()))
    cycle = Image.open(next((tmp_path / "cyc").iterdir()))
    assert grid.size == (32, 16) and cycle.size == (48, 16)
    assert len(list((tmp_path / "grid").iterdir())) == 3


def test_python_api_equals_the_cli(tmp_path, checkpoints):
    source = pictures(tmp_path / "in", 1)[0]
    assert invoke(str(source), "-c", str(checkpoints["twingan"]), "-o", str(tmp_path / "cli.png")).exit_code == 0
    translator = Translator.from_checkpoint(checkpoints["twingan"])
    api = translator.translate(Image.open(source))
    assert np.array_equal(np.asarray(api), np.asarray(Image.open(tmp_path / "cli.png")))
    tensor = translator.translate(torch.rand(2, 3, 8, 8))
    assert tensor.shape == (2, 3, 8, 8) and 0 <= tensor.min() and tensor.max() <= 1


def test_bad_inputs_are_skipped_reported_and_fail_the_exit_status(tmp_path, checkpoints):
    pictures(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a picture")
    (tmp_path / "in" / "empty.jpg").write_bytes(b"")
    result = invoke(str(tmp_path / "in"), "-c", str(checkpoints["twingan"]), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "translated 2 of 4 pictures; 2 skipped" in result.output and "broken.png" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000.png", "img_001.png"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.pt", "does not exist"),
    (lambda d: (d / "t.pt").write_bytes(b"\x00" * 10) and d / "t.pt", "is not a PyTorch .pt/.pth file"),
    (lambda d: torch.save({"weights": torch.ones(1)}, d / "f.pt") or d / "f.pt", "not a TwinGAN checkpoint"),
])
def test_bad_checkpoints_give_one_line(tmp_path, make, message):
    source = pictures(tmp_path / "in", 1)[0]
    result = invoke(str(source), "-c", str(make(tmp_path)), "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.png").exists()


def test_unwritable_output_and_missing_input_are_refused_before_work(tmp_path, checkpoints):
    source = pictures(tmp_path / "in", 2)[0]
    (tmp_path / "file").write_text("x")
    result = invoke(str(tmp_path / "in"), "-c", str(checkpoints["twingan"]), "-o", str(tmp_path / "file"))
    assert result.exit_code == 1 and "is a file" in result.output
    result = invoke(str(source), "-c", str(checkpoints["twingan"]), "-o", str(tmp_path / "file" / "x.png"))
    assert result.exit_code == 1 and "output folder" in result.output and "is a file" in result.output
    result = invoke(str(tmp_path / "nope*.png"), "-c", str(checkpoints["twingan"]))
    assert result.exit_code == 1 and "does not exist" in result.output


def test_sizes_the_model_cannot_take_are_refused(tmp_path, checkpoints):
    source = pictures(tmp_path / "in", 1)[0]
    result = invoke(str(source), "-c", str(checkpoints["twingan"]), "-o", str(tmp_path / "o.png"), "--size", "16")
    assert result.exit_code == 1 and "power of two from 8 to 8" in result.output
    assert invoke(str(source), "-c", str(checkpoints["cyclegan"]), "-o", str(tmp_path / "o.png"),
                  "--size", "32").exit_code == 0
    assert Image.open(tmp_path / "o.png").size == (32, 32)


def test_face_mode_translates_the_face_and_keeps_the_rest(tmp_path, checkpoints):
    photo = Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.Resampling.LANCZOS)
    photo.save(tmp_path / "astronaut.png")
    gradient_image(64, 64).save(tmp_path / "noface.png")
    result = invoke(str(tmp_path / "astronaut.png"), str(tmp_path / "noface.png"), "-c", str(checkpoints["twingan"]),
                    "-o", str(tmp_path / "out"), "--face")
    assert result.exit_code == 1 and "noface.png: no face found" in result.output
    out = np.asarray(Image.open(tmp_path / "out" / "astronaut.png")).astype(int)
    before = np.asarray(photo).astype(int)
    assert out.shape == before.shape
    changed = np.abs(out - before).sum(axis=2) > 0
    assert changed.sum() > 0.03 * changed.size and not changed[-20:, :].any()  # the face's oval, not its square


def test_face_mode_sends_a_pictures_faces_through_the_networks_in_one_batch(checkpoints, monkeypatch):
    translator = Translator.from_checkpoint(checkpoints["twingan"], "cpu")
    picture = gradient_image(96, seed=3)
    boxes = [(0, 0, 32, 32), (40, 10, 72, 42), (10, 50, 50, 90)]
    crops = [picture.resize((8, 8), box=box) for box in boxes]
    monkeypatch.setattr(face_paste, "face_crops", lambda *_: (boxes, crops))
    sizes = []
    run = translator.run
    monkeypatch.setattr(translator, "run", lambda x, *a, **k: sizes.append(len(x)) or run(x, *a, **k))
    result = face_paste.translate_faces(translator, picture, "a2b", 8)
    assert sizes == [3]
    one_by_one = [translator.translate(crop, "a2b", 8) for crop in crops]
    assert sizes == [3, 1, 1, 1]
    assert np.array_equal(np.asarray(result), np.asarray(paste_faces(picture, boxes, one_by_one)))


def test_the_face_mask_is_opaque_over_the_face_and_clear_well_inside_the_square():
    mask = face_mask(100)
    assert mask[50, 50] == 1.0 and mask.max() <= 1.0 and mask.min() >= 0.0
    assert mask[:10].max() == 0 and mask[:, :8].max() == 0 and mask[-3:].max() == 0 and mask[:, -8:].max() == 0


def test_a_pasted_face_leaves_no_band_or_halo_on_a_flat_background():
    """Second new-user pass, item 5: a translucent band above the pasted square (CLI), a greenish
    halo round it (serve). A flat grey photo gets a translation that is greener overall, with the
    bright smeared top rows a 64 px generator paints: nothing of either may show outside the face."""
    photo = Image.new("RGB", (300, 300), (120, 120, 120))
    patch = np.full((64, 64, 3), (100, 150, 100), np.uint8)
    patch[:6] = 250  # the smeared top rows
    patch[24:40, 24:40] = (30, 30, 30)  # a feature in the face's middle
    pasted = np.asarray(paste_faces(photo, [(50, 50, 250, 250)], [Image.fromarray(patch)])).astype(int)
    grey = np.array([120, 120, 120])
    inside = np.zeros((300, 300), bool)
    inside[50:250, 50:250] = True
    assert (pasted[~inside] == grey).all()
    box = pasted[50:250, 50:250]
    assert np.abs(box[:30] - grey).max() <= 2, "the band of the square's top rows shows"
    centre = box[70:130, 70:130]
    assert centre.min() < 60, "the face itself was not pasted"
    ring = face_mask(200)
    rim = (ring > 0.02) & (ring < 0.3)
    assert np.abs(box[rim] - grey).max() <= 12, "a colour step (halo) shows where the face meets the photo"
    assert np.abs(box[rim] - grey).mean() <= 4


def test_translator_refuses_a_twingan_run_without_checkpoints(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError, match="holds no checkpoint"):
        Translator.from_checkpoint(tmp_path / "run")


@pytest.mark.parametrize("model", ["twingan", "cyclegan"])
def test_onnx_export_matches_pytorch(tmp_path, checkpoints, model):
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    result = CliRunner().invoke(main, ["export", "-c", str(checkpoints[model]), "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime agrees with PyTorch" in result.output
    translator = Translator.from_checkpoint(checkpoints[model])
    size = translator.resolution
    batch = torch.rand(3, 3, size, size)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": batch.numpy()})[0]
    np.testing.assert_allclose(got, translator.translate(batch).numpy(), atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.parametrize("mode", ["squash", "crop"])
@pytest.mark.parametrize("shape", [(50, 30), (30, 50), (40, 40)])
def test_inference_resizing_matches_the_training_loader(mode, shape):
    picture = gradient_image(64).resize(shape)
    expected = to_model_range(loader_transform(DataConfig(resize=mode), 16, train=False)(picture))
    torch.testing.assert_close(to_tensor(resize_for_model(picture, 16, mode)), expected, rtol=0, atol=0)


def test_the_translate_command_starts_without_torchvision():
    code = "import sys, twingan.cli, twingan.cli.translate; print('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_the_console_command_exits_quickly_with_its_output_and_messages_intact(tmp_path, checkpoints):
    pictures(tmp_path / "in", 1)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a picture")
    command = [sys.executable, "-m", "twingan", "translate", str(tmp_path / "in"), "-c", str(checkpoints["twingan"]),
               "-o", str(tmp_path / "out"), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "translated 1 of 2 pictures; 1 skipped" in done.stdout and "broken.png" in done.stdout + done.stderr
    assert Image.open(tmp_path / "out" / "img_000.png").size == (8, 8)
    missing = subprocess.run([*command[:4], str(tmp_path / "nothing.png"), *command[5:]],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 1 and "nothing.png does not exist" in missing.stderr
