"""Videos: `twingan translate clip.mp4`, the face tracker, the stabiliser, and bad input.

Clips are made here with PyAV: a textured disc (a stand-in for a face) on a gradient, moving or
holding still, with or without an AAC tone. The model is the frozen tiny Twin-GAN of tests/data
(8 px), so a translation costs almost nothing and the tests are about the video handling.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from PIL import Image

from twingan.infer import face_track, video
from twingan.cli import main
from twingan.errors import UserError
from twingan.infer.faces import FaceBox
from twingan.infer.translator import Translator
from twingan.infer.video import FrameTranslator, Interrupted, VideoError, flicker_ratio, probe, translate_video

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def translator() -> Translator:
    return Translator.from_checkpoint(DATA / "twingan.pt", "cpu")


def scene(index: int, size: tuple[int, int] = (96, 64), speed: float = 2.0, noise: float = 0.0,
          seed: int = 0) -> np.ndarray:
    """One frame: a textured disc at x = 30 + speed * index on a gradient, plus sensor noise."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.stack([xx / width * 200, yy / height * 200, np.full_like(xx, 90)], axis=2)
    cx, cy, r = 30 + speed * index, height / 2, height / 4
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    texture = 128 + 100 * np.sin(xx / 2.5) * np.cos(yy / 3.0)
    frame[inside] = texture[inside, None]
    if noise:
        frame += np.random.default_rng(seed + index).normal(0, noise, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_clip(path: Path, frames: int = 12, rate: int = 12, audio: bool = False, speed: float = 2.0,
              noise: float = 0.0, times: list[Fraction] | None = None, rotation: int = 0,
              size: tuple[int, int] = (96, 64)) -> Path:
    """A short H.264 clip (and an AAC tone when `audio`); `times` gives each frame's own time (VFR)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.options = {"crf": "10", "preset": "ultrafast"}
    stream.codec_context.time_base = Fraction(1, 1000)
    if rotation:
        stream.set_display_rotation(rotation)
    sound = container.add_stream("aac", rate=8000) if audio else None
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(scene(i, size, speed, noise), format="rgb24")
        frame.pts = round((times[i] if times else Fraction(i, rate)) * 1000)
        frame.time_base = Fraction(1, 1000)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    if sound is not None:
        samples = int(8000 * frames / rate)
        tone = (0.3 * np.sin(np.arange(samples) / 8000 * 2 * np.pi * 440)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[:, start:start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    container.close()
    return path


def read_frames(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in decoded], [float(f.time) for f in decoded]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(f.samples for f in container.decode(audio=0)) / container.streams.audio[0].rate


@pytest.mark.parametrize("audio", [False, True])
def test_output_keeps_frame_count_rate_size_and_audio(tmp_path, translator, audio):
    clip = make_clip(tmp_path / "in.mp4", frames=12, audio=audio)
    report = translate_video(translator, clip, tmp_path / "out.mp4", progress=False)
    before, after = probe(clip), probe(tmp_path / "out.mp4")
    assert report.frames == 12 == len(read_frames(tmp_path / "out.mp4")[0])
    assert (after.width, after.height) == (before.width, before.height)
    assert abs(after.rate - before.rate) < 0.01 and abs(after.rate - 12) < 0.01
    assert after.has_audio == audio
    if audio:
        assert abs(audio_seconds(tmp_path / "out.mp4") - audio_seconds(clip)) < 0.05
    frames_in, frames_out = read_frames(clip)[0], read_frames(tmp_path / "out.mp4")[0]
    assert np.abs(frames_in[0].astype(int) - frames_out[0].astype(int)).mean() > 5  # it was translated


@pytest.mark.parametrize("suffix", [".webm", ".mkv", ".avi", ".mov"])
def test_every_container_is_written(tmp_path, translator, suffix):
    clip = make_clip(tmp_path / "in.mp4", frames=6)
    translate_video(translator, clip, tmp_path / f"out{suffix}", progress=False)
    assert len(read_frames(tmp_path / f"out{suffix}")[0]) == 6


def test_variable_frame_rate_keeps_each_frames_time(tmp_path, translator):
    times = [Fraction(t, 100) for t in (0, 5, 30, 35, 40, 100, 105, 160)]
    clip = make_clip(tmp_path / "vfr.mp4", frames=len(times), times=times)
    translate_video(translator, clip, tmp_path / "out.mp4", progress=False)
    written = read_frames(tmp_path / "out.mp4")[1]
    assert np.allclose(np.array(written) - written[0], [float(t) for t in times], atol=0.002)


def test_rotation_metadata_is_applied_and_the_output_is_upright(tmp_path, translator):
    clip = make_clip(tmp_path / "phone.mp4", frames=4, rotation=90, size=(96, 64))
    info = probe(clip)
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    frames = []
    video._decode(clip, info, _Collect(frames), _Collect([]), [], _Never())
    upright = frames[0].picture
    assert upright.shape == (96, 64, 3)
    # the stored frame's left edge (red ~0) becomes the bottom edge after a counter-clockwise turn
    assert upright[-4:, :, 0].mean() < upright[:4, :, 0].mean()
    translate_video(translator, clip, tmp_path / "out.mp4", progress=False)
    out = probe(tmp_path / "out.mp4")
    assert (out.width, out.height, out.rotation) == (64, 96, 0)


class _Collect(list):
    """A stand-in queue that keeps what is put (None ends the stream)."""

    def __init__(self, into: list) -> None:
        super().__init__()
        self.into = into

    def put(self, item) -> None:
        if item is not None:
            self.into.append(item)


class _Never:
    def is_set(self) -> bool:
        return False


def test_a_character_for_photo_output_is_refused_not_dropped(tmp_path, translator):
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    with pytest.raises(UserError, match="shapes anime output, and direction b2a makes photos"):
        translate_video(translator, clip, tmp_path / "out.mp4", "b2a", character=torch.zeros(1, 4), progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_stabiliser_lowers_flicker_on_a_still_subject(translator):
    still = [scene(0, noise=6.0, seed=i) for i in range(10)]
    flicker = {}
    for stable in (False, True):
        model = FrameTranslator(translator, "a2b", 8, face=False, rate=12, character=None, stable=stable)
        flicker[stable] = flicker_ratio(still, model(still))
    assert flicker[True] < 0.6 * flicker[False]


def test_stabiliser_follows_motion():
    stabiliser = video.Stabiliser()
    moving = [scene(i, speed=6.0) for i in range(6)]
    outputs = [stabiliser(frame, frame) for frame in moving]
    # output == input where the disc moved: no ghost of the earlier disc position is kept
    assert np.abs(outputs[-1].astype(int) - moving[-1].astype(int)).mean() < 6


def jittery_detector(centres: list[tuple[float, float]], side: float = 40, jitter: float = 3.0):
    """A detect_faces stand-in returning, frame by frame, boxes around `centres` with noise."""
    rng = np.random.default_rng(0)
    calls = iter(range(10_000))

    def detect(picture, kind, min_face=24):
        i = next(calls)
        return [FaceBox(round(x - side / 2 + rng.normal(0, jitter)), round(y - side / 2 + rng.normal(0, jitter)),
                        round(side), round(side)) for x, y in centres[i]]
    return detect


def test_tracked_box_moves_smoothly_and_keeps_its_identity(monkeypatch):
    frames, speed = 60, 0.5
    truth = [30 + speed * i for i in range(frames)]
    monkeypatch.setattr(face_track, "detect_faces", jittery_detector([[(x, 60)] for x in truth]))
    tracker = face_track.FaceTracker("photo", fps=25, detect_every=1)
    raw, smooth, ids = [], [], set()
    for _ in range(frames):
        (track_id, box), = tracker.update(Image.new("RGB", (200, 120)))
        ids.add(track_id)
        smooth.append((box[0] + box[2]) / 2)
        raw.append((tracker.tracks[0].measured_box()[0] + tracker.tracks[0].measured_box()[2]) / 2)
    shake = lambda xs: np.std(np.subtract(xs, truth)[20:])  # noqa: E731 - spread around the true path
    assert ids == {0}
    assert shake(smooth) < 0.4 * shake(raw)
    assert abs(np.mean(np.subtract(smooth, truth)[20:])) < 3  # and it keeps up with the moving face


def test_two_faces_get_two_identities(monkeypatch):
    centres = [[(40, 60), (150, 60)]] * 10
    monkeypatch.setattr(face_track, "detect_faces", jittery_detector(centres, jitter=0))
    tracker = face_track.FaceTracker("photo", fps=25, detect_every=1)
    for _ in range(10):
        found = dict(tracker.update(Image.new("RGB", (200, 120))))
    assert sorted(found) == [0, 1] and found[0][0] < found[1][0]


def test_the_box_is_tracked_between_detections(monkeypatch):
    monkeypatch.setattr(face_track, "detect_faces", jittery_detector([[(30, 32)]] * 100, side=24, jitter=0))
    tracker = face_track.FaceTracker("photo", fps=12, detect_every=100, min_cutoff=100.0, beta=0.0)
    boxes = [dict(tracker.update(Image.fromarray(scene(i, speed=2.0))))[0] for i in range(11)]
    moved = (boxes[-1][0] + boxes[-1][2]) / 2 - (boxes[0][0] + boxes[0][2]) / 2
    assert abs(moved - 20) < 4  # the disc moved 2 px a frame; only the first frame was detected


def test_face_mode_on_a_moving_astronaut(tmp_path, translator):
    astronaut = Image.fromarray(skimage.data.astronaut()).resize((192, 192))
    path = tmp_path / "astronaut.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 224, 192, "yuv420p"
    for i in range(8):
        canvas = Image.new("RGB", (224, 192), (40, 40, 40))
        canvas.paste(astronaut, (2 * i, 0))
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")))
    container.mux(stream.encode())
    container.close()
    translate_video(translator, path, tmp_path / "out.mp4", face=True, progress=False)
    before, after = read_frames(path)[0], read_frames(tmp_path / "out.mp4")[0]
    changed = np.abs(after[4].astype(int) - before[4].astype(int)).sum(axis=2) > 30
    assert len(after) == 8 and 0.02 < changed.mean() < 0.5  # the face changed, the rest did not
    assert not changed[:, -8:].any()


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not a readable video"),
    (lambda p: p.write_bytes(make_clip(p.with_name("whole.mp4"), frames=24).read_bytes()[:2000]),
     "damaged"),
    (lambda p: _audio_only(p), "has no video stream"),
    (lambda p: _no_frames(p), "holds no video frames"),
    (lambda p: _unknown_codec(p), "codec cannot be decoded"),
])
def test_bad_videos_get_one_line(tmp_path, translator, make, message):
    bad = tmp_path / "bad.mp4"
    make(bad)
    with pytest.raises(VideoError, match=message):
        translate_video(translator, bad, tmp_path / "out.mp4", progress=False)
    assert not (tmp_path / "out.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _audio_only(path: Path) -> None:
    container = av.open(str(path), "w")
    sound = container.add_stream("aac", rate=8000)
    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    chunk.sample_rate, chunk.pts = 8000, 0
    container.mux(sound.encode(chunk))
    container.mux(sound.encode())
    container.close()


def _unknown_codec(path: Path) -> None:
    """A Matroska clip whose codec id names no codec FFmpeg knows (the H.264 id, renamed in place)."""
    clip = make_clip(path.with_name("clip.mkv"), frames=4)
    data = clip.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    path.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_UNKNOWN/XY/ZZ"))


def _no_frames(path: Path) -> None:
    container = av.open(str(path), "w", format="avi")  # MP4 and Matroska keep no track without samples
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    container.start_encoding()
    container.close()


def test_an_interrupted_video_leaves_no_output(tmp_path, translator, monkeypatch):
    clip = make_clip(tmp_path / "in.mp4", frames=24)
    calls = []

    def interrupt(self, frames):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return frames
    monkeypatch.setattr(FrameTranslator, "__call__", interrupt)
    with pytest.raises(Interrupted, match="interrupted at frame 8 of 24"):
        translate_video(translator, clip, tmp_path / "out.mp4", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_the_cli_translates_a_folder_mixing_pictures_and_videos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mp4", frames=6, audio=True)
    (folder / "broken.mov").write_bytes(b"not a video")
    Image.fromarray(scene(0)).save(folder / "still.png")
    result = CliRunner().invoke(main, ["translate", str(folder), "-c", str(DATA / "twingan.pt"),
                                       "-o", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "translated 2 of 3 files; 1 skipped" in result.output and "broken.mov: not a readable video" in result.output
    assert len(read_frames(tmp_path / "out" / "clip.mp4")[0]) == 6
    assert (tmp_path / "out" / "still.png").is_file()


def test_the_cli_refuses_a_picture_name_for_a_video_and_grids(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    for extra, message in ((["-o", str(tmp_path / "x.png")], "must be a video"),
                           (["--grid"], "--grid and --cycle are for pictures")):
        result = CliRunner().invoke(main, ["translate", str(clip), "-c", str(DATA / "twingan.pt"), *extra])
        assert result.exit_code == 1 and message in result.output, result.output


def test_the_python_api(tmp_path, translator):
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    report = translator.translate_video(clip, tmp_path / "anime.mp4", progress=False)
    assert report.frames == 4 and (tmp_path / "anime.mp4").is_file()


def test_frames_over_the_pixel_limit_are_refused_before_decoding(translator, tmp_path, monkeypatch):
    """Second hostile pass, item 11: a 190 KB clip declaring 8000 x 8000 frames was OOM-killed."""
    clip = make_clip(tmp_path / "in.mp4", frames=2)
    monkeypatch.setattr(video, "MAX_FRAME_PIXELS", 96 * 64 - 1)
    with pytest.raises(VideoError, match="frames of 96x64 are over 6,143 pixels"):
        translate_video(translator, clip, tmp_path / "out.mp4", progress=False)
    assert not (tmp_path / "out.mp4").exists()


def test_a_video_cut_short_says_how_many_frames_it_lost(translator, tmp_path, caplog, monkeypatch):
    """Second hostile pass, item 15: a video cut at 60% was translated silently (12 of 20 frames).
    A 12-frame clip whose header is made to declare 20 stands for the cut file."""
    import dataclasses
    import logging

    clip = make_clip(tmp_path / "in.mp4", frames=12)
    real_probe = video.probe
    monkeypatch.setattr(video, "probe", lambda path: dataclasses.replace(real_probe(path), frames=20))
    with caplog.at_level(logging.WARNING, logger="twingan.infer.video"):
        report = translate_video(translator, clip, tmp_path / "out.mp4", progress=False)
    assert report.frames == 12
    assert any("only 12 of the 20 frames its header declares" in r.getMessage() for r in caplog.records)


def test_sigterm_during_a_video_is_taken_as_ctrl_c_and_leaves_no_file(tmp_path, monkeypatch):
    """Second hostile pass, item 15: SIGTERM left a hidden .tmp file and said nothing."""
    import os
    import signal

    clip = make_clip(tmp_path / "in.mp4", frames=24)
    calls = []

    def terminated(self, frames):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return frames

    monkeypatch.setattr(FrameTranslator, "__call__", terminated)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(main, ["translate", str(clip), "-c", str(DATA / "twingan.pt"),
                                       "-o", str(tmp_path / "out.mp4"), "--no-progress"])
    assert result.exit_code == 1 and "interrupted at frame" in result.output and "was not written" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert signal.getsignal(signal.SIGTERM) is before
