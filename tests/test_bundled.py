"""The model shipped inside the package: its file is the recorded one, it translates a fixed picture
to the recorded pixels, every command that needs a model works without --checkpoint, and a damaged
or foreign file in its place is refused in one line.

After a new model is bundled (tools/bundle_model.py), record its pixels once with
TWINGAN_RECORD_BUNDLED=1 pytest tests/test_bundled.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import die_with_parent, gradient_image, load_tool
from PIL import Image

from twingan import bundled
from twingan.bundled import bundled_model, bundled_models, load_bundled
from twingan.cli import main
from twingan.errors import UserError
from twingan.search.index import Index
from twingan.serve.service import Service
from twingan.infer.translator import Translator
from twingan.weights import file_sha256, load_weights

EXPECTED = Path(__file__).parent / "data" / "bundled-pixels.png"
"""a2b | b2a of the probe picture through the default bundled model, as recorded."""
MEAN_LEVELS, MAX_LEVELS = 0.5, 4
"""Grey levels (of 255) the output may drift by: float rounding across CPUs and torch versions
moves a few pixels by a level or two; other weights or other preprocessing move the mean by many."""


def probe() -> Image.Image:
    """Not square, so that how a picture is fitted to the model's square (data.resize) shows."""
    return gradient_image(128, seed=7).resize((128, 96))


def pixels(translator: Translator) -> np.ndarray:
    tiles = [np.asarray(translator.translate(probe(), direction)) for direction in ("a2b", "b2a")]
    return np.concatenate(tiles, axis=1)


def drift(got: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    difference = np.abs(got.astype(int) - expected.astype(int))
    return float(difference.mean()), int(difference.max())


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.pretrained(device="cpu")


def test_the_bundled_file_is_the_recorded_one_and_loads_without_code(translator):
    model = bundled_model()
    assert model.default and model.path.is_file()
    assert file_sha256(model.path) == model.sha256 and model.path.stat().st_size == model.bytes
    weights = load_weights(model.path, "bundled model", formats=("safetensors",))
    assert weights.format == "safetensors" and weights.metadata["format"] == bundled.FORMAT
    assert translator.bundled == model and translator.resolution == model.resolution == 64
    assert translator.images_seen == model.images_seen and translator.model == model.model


def test_the_bundled_model_translates_the_probe_to_the_recorded_pixels(translator):
    got = pixels(translator)
    if os.environ.get("TWINGAN_RECORD_BUNDLED"):
        Image.fromarray(got).save(EXPECTED)
        pytest.skip(f"recorded {EXPECTED}")
    mean, largest = drift(got, np.asarray(Image.open(EXPECTED)))
    assert mean <= MEAN_LEVELS and largest <= MAX_LEVELS, (mean, largest)


def test_the_pixel_tolerance_catches_changed_weights_and_preprocessing(translator):
    expected = np.asarray(Image.open(EXPECTED))
    changed = Translator.pretrained(device="cpu")
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in changed.net.parameters():
            weight.add_(torch.randn(weight.shape, generator=noise) * 0.02 * weight.std().nan_to_num())
    assert drift(pixels(changed), expected)[0] > MEAN_LEVELS
    fitted_otherwise = Translator.pretrained(device="cpu")
    fitted_otherwise.cfg.data.resize = "crop" if fitted_otherwise.cfg.data.resize != "crop" else "squash"
    assert drift(pixels(fitted_otherwise), expected)[0] > MEAN_LEVELS


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """A private copy of the bundled folder that the package reads instead of its own."""
    folder = tmp_path / "models"
    shutil.copytree(bundled.FOLDER, folder)
    monkeypatch.setattr(bundled, "FOLDER", folder)
    return folder


def test_a_damaged_bundled_file_is_refused(shipped):
    path = shipped / bundled_model().file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="is damaged or not the file this TwinGAN shipped"):
        Translator.pretrained(device="cpu")
    result = CliRunner().invoke(main, ["translate", str(path), "-o", str(shipped / "x.png")])
    assert result.exit_code == 1 and "is damaged" in result.output and "Traceback" not in result.output


def test_a_foreign_file_is_refused_even_with_a_matching_hash(shipped):
    from safetensors.torch import save_file

    model = bundled_model()
    save_file({"weight": torch.zeros(3)}, str(model.path), metadata={"format": "someone-else"})
    with pytest.raises(UserError, match="is damaged"):
        load_bundled()
    manifest = json.loads((shipped / bundled.MANIFEST).read_text())
    manifest[0]["sha256"] = file_sha256(model.path)
    (shipped / bundled.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="is not a TwinGAN bundled model"):
        load_bundled()
    (shipped / bundled.MANIFEST).write_text("{not json")
    with pytest.raises(UserError, match="manifest .* is damaged"):
        bundled_models()


def test_a_missing_bundle_asks_for_a_checkpoint(shipped, tmp_path):
    (shipped / bundled.MANIFEST).unlink()
    probe().save(tmp_path / "me.png")
    result = CliRunner().invoke(main, ["translate", str(tmp_path / "me.png"), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "ships no bundled model" in result.output and "--checkpoint" in result.output


def test_an_unknown_name_is_refused_naming_the_bundled_ones():
    with pytest.raises(UserError, match=f"no bundled model is called 'nope'; bundled: {bundled_model().name}"):
        Translator.pretrained("nope")


def test_twingan_models_lists_the_bundled_model():
    result = CliRunner().invoke(main, ["models"])
    model = bundled_model()
    assert result.exit_code == 0, result.output
    assert f"* {model.name}" in result.output and f"{model.images_seen:,}" in result.output


# ---------------------------------------------------------------- every command without --checkpoint
def two_domains(folder: Path, count: int, stride: int) -> None:
    """folder/a and folder/b with `count` small pictures each, different in every domain and place."""
    for domain in ("a", "b"):
        (folder / domain).mkdir()
        for i in range(count):
            gradient_image(64, seed=stride * i + (domain == "b")).save(folder / domain / f"{i}.png")


NOTE = "no --checkpoint given: using the bundled model"


def test_translate_without_a_checkpoint_uses_the_bundled_model(tmp_path):
    probe().save(tmp_path / "me.png")
    result = CliRunner().invoke(main, ["translate", str(tmp_path / "me.png"), "-o", str(tmp_path / "anime.png")])
    assert result.exit_code == 0, result.output
    assert result.output.count(NOTE) == 1
    assert Image.open(tmp_path / "anime.png").size == (64, 64)


def test_a_large_picture_gets_face_mode_unless_told_otherwise(tmp_path, monkeypatch):
    """A phone-sized picture goes through face mode by default (here no face is found, so it is
    translated whole and the summary says so); --no-face skips the search; a small one never searches."""
    import twingan.cli.translate as translate_files

    searched = []
    real = translate_files.translate_faces
    monkeypatch.setattr(translate_files, "translate_faces", lambda t, p, *a: searched.append(p.size) or real(t, p, *a))
    Image.new("RGB", (900, 700), "white").save(tmp_path / "phone.jpg")
    probe().save(tmp_path / "crop.png")
    auto = CliRunner().invoke(main, ["translate", str(tmp_path / "phone.jpg"), str(tmp_path / "crop.png"),
                                     "-o", str(tmp_path / "out"), "--no-progress"])
    assert auto.exit_code == 0, auto.output
    assert searched == [(900, 700)] and "1 without a face found, translated whole: " in auto.output
    assert Image.open(tmp_path / "out" / "phone.jpg").size == (64, 64)
    searched.clear()
    off = CliRunner().invoke(main, ["translate", str(tmp_path / "phone.jpg"), "--no-face",
                                    "-o", str(tmp_path / "off.png")])
    assert off.exit_code == 0 and searched == [] and "without a face" not in off.output
    on = CliRunner().invoke(main, ["translate", str(tmp_path / "crop.png"), "--face", "-o", str(tmp_path / "on.png")])
    assert on.exit_code == 1 and searched == [(128, 96)] and "no face found" in on.output


def test_a_picture_whose_header_cannot_be_read_goes_the_whole_picture_way(tmp_path):
    from twingan.cli.translate import Job, split_by_face_mode

    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    Image.new("RGB", (600, 800)).save(tmp_path / "phone.png")
    jobs = [Job(tmp_path / "broken.jpg", tmp_path / "o1.png"), Job(tmp_path / "phone.png", tmp_path / "o2.png")]
    assert split_by_face_mode(jobs, None) == ([jobs[1]], [jobs[0]])
    assert split_by_face_mode(jobs, True) == (jobs, []) and split_by_face_mode(jobs, False) == ([], jobs)
    result = CliRunner().invoke(main, ["translate", str(tmp_path / "broken.jpg"), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1 and "skipped" in result.output and "Traceback" not in result.output


def test_export_without_a_checkpoint(tmp_path):
    pytest.importorskip("onnxscript")
    result = CliRunner().invoke(main, ["export", "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert NOTE in result.output and (tmp_path / "m.onnx").stat().st_size > 100_000


def test_index_and_neighbors_without_a_checkpoint(tmp_path):
    two_domains(tmp_path, 4, 10)
    built = CliRunner().invoke(main, ["index", "build", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                                      "-o", str(tmp_path / "ix"), "--no-progress"])
    assert built.exit_code == 0 and NOTE in built.output, built.output
    settings = Index.open(tmp_path / "ix").settings
    assert (settings.checkpoint, settings.checkpoint_sha256) == (f"bundled:{bundled_model().name}",
                                                                 bundled_model().sha256)
    query = tmp_path / "b" / "2.png"
    found = CliRunner().invoke(main, ["neighbors", str(query), "--index", str(tmp_path / "ix"), "-k", "1",
                                      "--query-domain", "b", "--domain", "b", "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output[found.output.index("{"):])[str(query)][0]["path"] == str(query.resolve())


def test_a_bundled_index_is_served_and_searched_with_its_model_only(tmp_path):
    two_domains(tmp_path, 3, 20)
    built = CliRunner().invoke(main, ["index", "build", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                                      "-o", str(tmp_path / "ix"), "--no-progress"])
    assert built.exit_code == 0, built.output
    service = Service.load(None, tmp_path / "ix", device="cpu")
    assert service.translator.bundled == bundled_model() and service.index is not None
    own = Path(__file__).parent / "data" / "twingan.pt"
    with pytest.raises(UserError, match="leave out --checkpoint"):
        Service.load(own, tmp_path / "ix", device="cpu")
    found = CliRunner().invoke(main, ["neighbors", str(tmp_path / "a" / "0.png"), "--index", str(tmp_path / "ix"),
                                      "-c", str(own)])
    assert found.exit_code == 1 and "leave out --checkpoint" in found.output


def test_serve_without_a_checkpoint():
    bench = load_tool("bench_serve")
    photo = io.BytesIO()
    probe().save(photo, format="PNG")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with bench.running_server(["--device", "cpu"], env=env, preexec_fn=die_with_parent) as (url, process):
        sent = httpx.post(f"{url}/api/translate", files={"photo": ("p.png", photo.getvalue(), "image/png")})
        assert sent.status_code == 200 and Image.open(io.BytesIO(sent.content)).size == (64, 64)
    output = process.stdout.read()
    assert NOTE in output and f"serving bundled model {bundled_model().name}" in output, output


def test_the_python_api_loads_by_name_or_by_default(translator):
    assert Translator.pretrained(bundled_model().name, device="cpu").bundled == translator.bundled
    assert Translator.load(None, "cpu").bundled == translator.bundled


def test_eval_without_a_checkpoint_scores_the_bundled_model(tmp_path):
    two_domains(tmp_path, 4, 30)
    result = CliRunner().invoke(main, ["eval", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                                       "-o", str(tmp_path / "r.json"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert NOTE in result.output
    assert json.loads((tmp_path / "r.json").read_text())["checkpoint"] == f"bundled model {bundled_model().name}"


@pytest.mark.parametrize(("field", "value"), [("resolution", "64"), ("name", 5), ("default", "yes"), ("bytes", None)])
def test_a_manifest_field_of_the_wrong_type_is_refused_in_one_line(shipped, field, value):
    """Second hostile pass, item 15: such a manifest gave tracebacks in `twingan models` and translate."""
    manifest = json.loads((shipped / bundled.MANIFEST).read_text())
    manifest[0][field] = value
    (shipped / bundled.MANIFEST).write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 1, result.output
    assert "manifest" in result.output and "is damaged" in result.output and "Traceback" not in result.output
    with pytest.raises(UserError, match="manifest .* is damaged"):
        Translator.pretrained(device="cpu")
