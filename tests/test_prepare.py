"""Face crops: crop geometry, detection on a real photo, the report, resuming, and the command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from conftest import encoded, gradient_image
from PIL import Image

from twingan.cli import main
from twingan.errors import UserError
from twingan.infer.faces import FaceBox, detect_faces, square_crop_box
from twingan.cli.prepare import REPORT_NAME, prepare_faces


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    """scikit-image's bundled 512 px portrait: one frontal face, around (177, 67) to (268, 158)."""
    return Image.fromarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def small_astronaut(astronaut: Image.Image) -> Image.Image:
    """The same face at 200 px, where detection takes a fraction of the time."""
    return astronaut.resize((200, 200), Image.Resampling.LANCZOS)


# --- crop geometry ---------------------------------------------------------------------------

def test_crop_is_centred_on_the_face_without_lift():
    assert square_crop_box(FaceBox(40, 40, 20, 20), (100, 100), scale=2.0, lift=0.0) == (30, 30, 70, 70)


def test_lift_moves_the_crop_up_by_a_fraction_of_the_face():
    assert square_crop_box(FaceBox(40, 40, 20, 20), (100, 100), scale=2.0, lift=0.1) == (30, 28, 70, 68)


def test_crop_uses_the_larger_side_of_the_face():
    left, top, right, bottom = square_crop_box(FaceBox(40, 30, 10, 30), (100, 100), scale=1.0, lift=0.0)
    assert right - left == bottom - top == 30


@pytest.mark.parametrize(("face", "expected"), [
    (FaceBox(0, 40, 20, 20), (0, 30, 40, 70)),     # left border
    (FaceBox(86, 40, 14, 14), (72, 33, 100, 61)),  # right border
    (FaceBox(40, -5, 20, 20), (30, 0, 70, 40)),    # top border, face reaching past it
    (FaceBox(40, 90, 20, 20), (30, 60, 70, 100)),  # bottom border
])
def test_crop_is_shifted_inside_at_each_border(face, expected):
    assert square_crop_box(face, (100, 100), scale=2.0, lift=0.0) == expected


def test_crop_shrinks_only_when_the_picture_is_too_small():
    assert square_crop_box(FaceBox(10, 10, 80, 40), (100, 60), scale=1.5, lift=0.0) == (20, 0, 80, 60)


def test_crop_is_always_a_square_inside_the_picture():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        width, height = (int(v) for v in rng.integers(1, 300, size=2))
        side = int(rng.integers(1, 200))
        face = FaceBox(int(rng.integers(-50, width)), int(rng.integers(-50, height)), side,
                       int(rng.integers(1, 200)))
        scale = float(rng.uniform(0.5, 3.0))
        left, top, right, bottom = square_crop_box(face, (width, height), scale)
        assert right - left == bottom - top >= 1
        assert 0 <= left and 0 <= top and right <= width and bottom <= height
        assert right - left == max(1, min(round(scale * max(face.w, face.h)), width, height))


# --- detection ---------------------------------------------------------------------------------

def test_finds_the_one_face_of_a_real_photo(astronaut):
    faces = detect_faces(astronaut, "photo")
    assert len(faces) == 1
    face = faces[0]
    assert 180 <= face.x + face.w / 2 <= 260 and 80 <= face.y + face.h / 2 <= 150
    assert 70 <= face.w <= 130


def test_large_pictures_give_full_resolution_boxes(astronaut):
    """Detection runs on a <= 512 px copy; the box must come back in the big picture's pixels."""
    faces = detect_faces(astronaut.resize((1536, 1536), Image.Resampling.BICUBIC), "photo")
    assert len(faces) == 1
    face = faces[0]
    assert 540 <= face.x + face.w / 2 <= 780 and 240 <= face.y + face.h / 2 <= 450


def test_two_faces_come_largest_first(small_astronaut):
    head = small_astronaut.crop((44, 0, 164, 120))
    picture = Image.new("RGB", (260, 120), (128, 128, 128))
    picture.paste(head.resize((100, 100)), (0, 10))
    picture.paste(head, (140, 0))
    faces = detect_faces(picture, "photo")
    assert len(faces) == 2
    assert faces[0].x > 130 > faces[1].x
    assert faces[0].w > faces[1].w


@pytest.mark.parametrize("kind", ["photo", "anime"])
def test_no_face_in_a_synthetic_picture(kind):
    assert detect_faces(gradient_image(96), kind) == []
    assert detect_faces(Image.new("RGB", (3, 2)), kind) == []


def test_min_face_ignores_smaller_faces(small_astronaut):
    assert len(detect_faces(small_astronaut, "photo", min_face=24)) == 1
    assert detect_faces(small_astronaut, "photo", min_face=80) == []


# --- prepare_faces -----------------------------------------------------------------------------

def test_faces_are_cropped_and_the_rest_reported(tmp_path, astronaut):
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "people").mkdir(parents=True)
    astronaut.save(src / "people" / "astronaut.png")
    gradient_image(96).save(src / "plain.png")
    (src / "broken.jpg").write_bytes(encoded(gradient_image(96), "JPEG")[:300])
    (src / "notes.jpg").write_text("not a picture")

    report = prepare_faces(src, out, "photo", size=64, progress=False)

    crop = Image.open(out / "people" / "astronaut.png")
    assert crop.size == (64, 64) and crop.mode == "RGB"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["people/astronaut.png"]
    assert (report.pictures_scanned, report.pictures_with_face, report.faces_written) == (4, 1, 1)
    assert report.no_face == ["plain.png"]
    assert [u["path"] for u in report.unreadable] == ["broken.jpg", "notes.jpg"]
    assert all(u["reason"] and str(src) not in u["reason"] for u in report.unreadable)
    saved = json.loads((out / REPORT_NAME).read_text())
    assert saved["no_face"] == ["plain.png"] and len(saved["unreadable"]) == 2
    assert saved["settings"] == {"size": 64, "scale": 1.5, "min_face": 24, "format": "png"}
    assert report.summary() == ("1 of 4 pictures had a face (1 face written); 1 without a face, "
                                f"2 unreadable: see {out / REPORT_NAME}")


def test_every_face_gets_a_name_and_no_crop_overwrites_another(tmp_path, small_astronaut):
    head = small_astronaut.crop((44, 0, 164, 120))
    two = Image.new("RGB", (240, 120), (128, 128, 128))
    two.paste(head, (0, 0))
    two.paste(head, (120, 0))
    src = tmp_path / "src"
    src.mkdir()
    two.save(src / "a.png")
    two.save(src / "a.jpg", quality=95)
    gradient_image(64).save(src / "a_1.png")

    report = prepare_faces(src, tmp_path / "out", "photo", size=32, fmt="jpg", progress=False)

    written = sorted(p.name for p in (tmp_path / "out").glob("*.jpg"))
    assert written == ["a.jpg", "a_2.jpg", "a_png.jpg", "a_png_1.jpg"]
    assert report.faces_written == 4 and report.no_face == ["a_1.png"]


def test_a_second_run_skips_pictures_already_done(tmp_path, small_astronaut):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    small_astronaut.save(src / "face.png")
    gradient_image(64).save(src / "plain.png")
    prepare_faces(src, out, "photo", size=32, progress=False)
    (out / "face.png").write_bytes(b"left alone")

    again = prepare_faces(src, out, "photo", size=32, progress=False)
    assert (out / "face.png").read_bytes() == b"left alone"
    assert (again.already_done, again.faces_written, again.pictures_with_face) == (1, 0, 1)
    assert again.no_face == ["plain.png"]
    assert "(0 faces written, 1 picture already done)" in again.summary()

    redone = prepare_faces(src, out, "photo", size=32, overwrite=True, progress=False)
    assert redone.faces_written == 1 and Image.open(out / "face.png").size == (32, 32)


def test_an_output_folder_inside_the_source_is_not_scanned(tmp_path, small_astronaut):
    small_astronaut.save(tmp_path / "face.png")
    first = prepare_faces(tmp_path, tmp_path / "faces", "photo", size=32, progress=False)
    second = prepare_faces(tmp_path, tmp_path / "faces", "photo", size=32, overwrite=True, progress=False)
    assert first.pictures_scanned == second.pictures_scanned == 1


@pytest.mark.parametrize(("setup", "options", "message"), [
    ("missing", {}, "does not exist"),
    ("file", {}, "is not a folder"),
    ("empty", {}, "holds no pictures"),
    ("out_file", {}, "exists and is not a folder"),
    ("ok", {"size": 0}, "--size"),
    ("ok", {"scale": 0.0}, "--scale"),
    ("ok", {"kind": "cat"}, "--kind"),
])
def test_user_mistakes_name_the_path_or_option(tmp_path, setup, options, message):
    src, out = tmp_path / "src", tmp_path / "out"
    if setup == "file":
        src.write_text("x")
    elif setup != "missing":
        src.mkdir()
    if setup in ("ok", "out_file"):
        gradient_image(32).save(src / "a.png")
    if setup == "out_file":
        out.write_text("x")
    arguments = {"kind": "photo", "progress": False, **options}
    with pytest.raises(UserError, match=message) as caught:
        prepare_faces(src, out, **arguments)
    if setup != "ok":
        assert str(src if setup != "out_file" else out) in str(caught.value)


# --- the command -------------------------------------------------------------------------------

def test_help_lists_the_options():
    result = CliRunner().invoke(main, ["prepare", "--help"])
    assert result.exit_code == 0
    for option in ("--out", "--kind", "--size", "--scale", "--min-face", "--format", "--report",
                   "--overwrite"):
        assert option in result.output


def test_missing_source_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(main, ["prepare", str(missing), "-o", str(tmp_path / "out"),
                                       "--kind", "photo"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0]
    assert "Traceback" not in result.output


def test_command_writes_crops_report_and_summary(tmp_path, small_astronaut):
    src = tmp_path / "src"
    src.mkdir()
    small_astronaut.save(src / "face.jpg", quality=95)
    gradient_image(64).save(src / "plain.png")
    report = tmp_path / "elsewhere" / "report.json"
    result = CliRunner().invoke(main, ["prepare", str(src), "-o", str(tmp_path / "out"), "--kind", "photo",
                                       "--size", "48", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [
        f"1 of 2 pictures had a face (1 face written); 1 without a face, 0 unreadable: see {report}"]
    assert Image.open(tmp_path / "out" / "face.png").size == (48, 48)
    assert json.loads(report.read_text())["no_face"] == ["plain.png"]


def test_command_with_no_face_at_all_still_succeeds(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    gradient_image(64).save(src / "plain.png")
    result = CliRunner().invoke(main, ["prepare", str(src), "-o", str(tmp_path / "out"), "--kind", "anime"])
    assert result.exit_code == 0, result.output
    assert "0 of 1 picture had a face" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [REPORT_NAME]


# --- real anime pictures -----------------------------------------------------------------------

@pytest.mark.integration
def test_anime_faces_in_real_pictures(tmp_path, shared_data):
    src = tmp_path / "src"
    src.mkdir()
    for path in sorted((shared_data / "getchu128").glob("*.jpg"))[:8]:
        shutil.copy(path, src)
    report = prepare_faces(src, tmp_path / "out", "anime", size=96, progress=False)
    assert report.pictures_scanned == 8 and report.pictures_with_face >= 7
    crops = sorted((tmp_path / "out").glob("*.png"))
    assert len(crops) == report.faces_written
    assert all(Image.open(crop).size == (96, 96) for crop in crops)


def test_kind_none_writes_the_centred_square_of_every_picture(tmp_path):
    src = tmp_path / "cats"
    src.mkdir()
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255  # the centred 40 x 40 square is white, the sides black
    Image.fromarray(wide).save(src / "wide.png")
    gradient_image(32).save(src / "small.png")
    (src / "broken.jpg").write_bytes(b"not a picture")
    report = prepare_faces(src, tmp_path / "out", "none", size=16, progress=False)
    assert report.faces_written == 2 and report.no_face == []
    assert [u["path"] for u in report.unreadable] == ["broken.jpg"]
    crop = np.asarray(Image.open(tmp_path / "out" / "wide.png"))
    assert crop.shape == (16, 16, 3) and crop[2:-2, 2:-2].min() >= 250 and crop.mean() > 240
    assert Image.open(tmp_path / "out" / "small.png").size == (16, 16)
