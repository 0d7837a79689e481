"""Videos through a Translator: decode, translate in batches, encode, in a three-stage pipeline.

Decoding runs in one thread and encoding in another (PyAV releases the GIL inside FFmpeg, as
torch does inside its kernels), so neither waits for the model. Frames keep their own time
stamps, so a variable-frame-rate phone clip keeps its timing; audio packets are copied into the
output as they are (not re-encoded). Rotation metadata is applied to the frames, and the output
is written upright without it. The output is written to a temporary file and renamed at the end:
an error or Ctrl-C leaves nothing behind.

Two modes: whole frames (letterboxed to the model's square, translated, scaled back) or faces
(`face=True`: each face followed by twingan.infer.face_track, translated at the model's size and
blended back as `translate --face` does for pictures). `stable` blends each output frame with the
previous one where the input barely changed (see `Stabiliser`), which removes most flicker on a
still subject.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from twingan.atomic import atomic_path
from twingan.domains import refuse_character_for
from twingan.errors import UserError
from twingan.infer.face_paste import FACE_KIND, paste_faces

if TYPE_CHECKING:
    import av

    from twingan.infer.translator import Translator

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi"})
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
"""The video codec written per container: H.264 where it is at home, VP9 for WebM (which admits
only VP8/VP9/AV1), MPEG-4 part 2 for AVI (H.264 in AVI plays in few players)."""
ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "veryfast"},
                   "libvpx-vp9": {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}}
"""Near-transparent quality at a speed that keeps the encoder off the critical path."""
log = logging.getLogger(__name__)
QUEUE_FRAMES = 64
"""Frames that may wait between two stages: enough to keep the model busy, little memory."""
QUEUE_BYTES = 512 * 2**20
"""...and at most this much of them: 64 decoded 4K frames would hold 1.6 GB."""
MAX_FRAME_PIXELS = 4096 * 4096
"""Larger frames are refused before decoding (4K UHD and DCI fit): a 190 KB H.264 clip can
declare 8000 x 8000 frames, which the queues would hold by the dozen until memory ran out."""


class VideoError(UserError):
    """A video that cannot be read or written: one line naming the file."""


class Interrupted(UserError):
    """Ctrl-C during a video: nothing was written."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    """Upright size (after rotation metadata)."""
    rate: Fraction
    """Average frames per second."""
    frames: int
    """Frames as the container states them (an estimate from the duration where it does not)."""
    rotation: int
    has_audio: bool


@dataclass
class VideoReport:
    frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def find_videos(root: Path) -> list[Path]:
    """Every video under `root` (recursively, extensions case-insensitive, hidden names skipped)."""
    return sorted(p for p in root.rglob("*") if is_video(p) and not p.name.startswith(".") and p.is_file())


def _open(path: Path) -> av.container.InputContainer:
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.EOFError):
        raise VideoError(f"{path}: not a readable video (damaged, truncated or not a video file)") from None
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: cannot be opened ({exc.strerror or exc})") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.codec.is_decoder:
        raise VideoError(f"{path}: its video codec cannot be decoded by this FFmpeg build")
    return stream


def probe(path: Path) -> VideoInfo:
    """What the container says about its first video stream; a VideoError for anything unusable."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = stream.frames
        if not frames and stream.duration and stream.time_base:
            frames = round(float(stream.duration * stream.time_base * rate))
        if not frames and container.duration:
            frames = round(container.duration / 1_000_000 * float(rate))
        rotation = _rotation(container, stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation % 180:
            width, height = height, width
        return VideoInfo(width, height, Fraction(rate), int(frames or 0), rotation, bool(container.streams.audio))


def _rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Counter-clockwise display rotation in degrees (0, 90, 180, 270), from the first frame's
    display matrix (which is where FFmpeg puts a phone's rotation)."""
    import av

    try:
        for frame in container.decode(stream):
            return round(frame.rotation / 90) % 4 * 90
    except av.error.FFmpegError:  # a damaged first frame: the decoding itself reports it
        pass
    return 0


def _upright(array: np.ndarray, rotation: int) -> np.ndarray:
    """A frame as it is meant to be seen: turned counter-clockwise by the display rotation."""
    return np.ascontiguousarray(np.rot90(array, k=rotation // 90)) if rotation else array


@dataclass
class Frame:
    picture: np.ndarray
    """HWC uint8 RGB, upright."""
    time: Fraction | None
    """Presentation time in seconds (None where the container gives none: the frame rate decides)."""


class Stabiliser:
    """Keeps consecutive outputs stable where the input barely changed.

    Each output pixel is blended with the previous output in proportion to how still the input is
    there: weight = keep * exp(-change / tolerance), change being the absolute difference between
    this frame's and the last frame's 8 x 8 block means (averaging before the absolute value
    cancels sensor noise, so noise does not count as motion while a moving edge does). A still
    face gets `keep` of the previous output (a recursive average of the last few frames); a moving
    hand gets almost none, so nothing ghosts behind motion. The weights are computed on the block
    means and only the blend runs at full size (a third of the time of the full-size version).
    """

    BLOCK = 8

    def __init__(self, keep: float = 0.9, tolerance: float = 6.0) -> None:
        self.keep, self.tolerance = keep, tolerance
        self._blocks: np.ndarray | None = None
        self._output: np.ndarray | None = None

    def __call__(self, source: np.ndarray, translated: np.ndarray) -> np.ndarray:
        height, width = source.shape[:2]
        small = (max(1, width // self.BLOCK), max(1, height // self.BLOCK))
        blocks = np.asarray(Image.fromarray(source).resize(small, Image.Resampling.BOX), dtype=np.float32)
        output = translated.astype(np.float32)
        if self._blocks is not None and self._blocks.shape == blocks.shape and self._output.shape == output.shape:
            change = np.abs((blocks - self._blocks).mean(axis=2))
            weight = Image.fromarray(self.keep * np.exp(-change / self.tolerance)).resize(
                (width, height), Image.Resampling.BILINEAR)
            output += np.asarray(weight, dtype=np.float32)[:, :, None] * (self._output - output)
        self._blocks, self._output = blocks, output
        return np.clip(output + 0.5, 0, 255).astype(np.uint8)


def flicker_ratio(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """Mean absolute change between consecutive output frames over the same for the input frames:
    1 means the output changes as much as the input does; on a still subject, less is steadier."""
    def change(frames: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(b.astype(np.float32) - a.astype(np.float32)).mean()
                              for a, b in zip(frames, frames[1:])]))
    return change(outputs) / max(change(inputs), 1e-6)


class FrameTranslator:
    """Turns frames into translated frames, batch by batch: the model's part of the pipeline."""

    def __init__(self, translator: Translator, direction: str, size: int, face: bool, rate: float,
                 character: torch.Tensor | None, stable: bool) -> None:
        self.translator, self.direction, self.size, self.character = translator, direction, size, character
        from twingan.infer.face_track import FaceTracker  # scikit-image: 0.2 s that only face mode needs

        self.tracker = FaceTracker(FACE_KIND[direction], rate) if face else None
        self.stabiliser = Stabiliser() if stable else None

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        pictures = [Image.fromarray(f) for f in frames]
        if self.tracker is None:
            patches = self._translate([_letterbox(p, self.size) for p in pictures])
            results = [_unletterbox(p, patch) for p, patch in zip(pictures, patches)]
        else:
            boxes = [[box for _, box in self.tracker.update(p)] for p in pictures]
            crops = [p.resize((self.size, self.size), Image.Resampling.LANCZOS, box=box)
                     for p, frame_boxes in zip(pictures, boxes) for box in frame_boxes]
            translated = iter(self._translate(crops))
            results = [paste_faces(p, frame_boxes, [next(translated) for _ in frame_boxes])
                       for p, frame_boxes in zip(pictures, boxes)]
        outputs = [np.asarray(r) for r in results]
        return [self.stabiliser(f, o) for f, o in zip(frames, outputs)] if self.stabiliser else outputs

    def _translate(self, crops: list[Image.Image]) -> list[Image.Image]:
        if not crops:
            return []
        translated = self.translator.translate_pictures(crops, self.direction, self.size, self.character,
                                                        batch_size=len(crops))
        return [picture.convert("RGB") for picture in translated]


def _letterbox(picture: Image.Image, size: int) -> Image.Image:
    """The whole frame, centred on a black square, at the model's size."""
    side = max(picture.size)
    square = Image.new("RGB", (side, side))
    square.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))
    return square.resize((size, size), Image.Resampling.LANCZOS)


def _unletterbox(picture: Image.Image, patch: Image.Image) -> Image.Image:
    """The translated square scaled back to the frame's size, without the black bars."""
    side = max(picture.size)
    left, top = (side - picture.width) // 2, (side - picture.height) // 2
    return patch.resize((side, side), Image.Resampling.BICUBIC).crop(
        (left, top, left + picture.width, top + picture.height))


def _decode(path: Path, info: VideoInfo, frames_out: queue.Queue, audio_out: queue.Queue,
            failure: list[BaseException], stop: threading.Event) -> None:
    """Reader thread: upright RGB frames with their times, and the audio packets, in stream order."""
    import av

    try:
        with _open(path) as container:
            video = _video_stream(container, path)
            streams = [video] + ([container.streams.audio[0]] if info.has_audio else [])
            for index, packet in enumerate(_demux(container, streams, path)):
                if stop.is_set():
                    return
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        audio_out.put(packet)
                    continue
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    raise VideoError(f"{path}: video data is damaged (cannot decode a packet after "
                                     f"{index} packets)") from None
                for frame in decoded:
                    time_stamp = (Fraction(frame.pts) * frame.time_base if frame.pts is not None
                                  and frame.time_base else None)
                    picture = _upright(frame.to_ndarray(format="rgb24"), info.rotation)
                    frames_out.put(Frame(picture, time_stamp))
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
        failure.append(exc)
    finally:
        frames_out.put(None)
        audio_out.put(None)


def _demux(container: av.container.InputContainer, streams: list, path: Path) -> Iterator[av.Packet]:
    import av

    try:
        yield from container.demux(*streams)
    except av.error.FFmpegError:
        raise VideoError(f"{path}: video data is damaged or truncated") from None


class _Writer:
    """Encoder thread: frames (with their times) and copied audio packets into the output file."""

    def __init__(self, tmp: Path, suffix: str, info: VideoInfo, source: Path) -> None:
        import av

        self.container = av.open(str(tmp), "w", format=CONTAINERS[suffix])
        self.stream = self.container.add_stream(CODECS[suffix], rate=info.rate)
        self.stream.width, self.stream.height = info.width, info.height
        even = info.width % 2 == 0 and info.height % 2 == 0
        self.stream.pix_fmt = "yuv420p" if even or CODECS[suffix] != "libx264" else "yuv444p"
        self.time_base = Fraction(1, 90_000) if CODECS[suffix] != "mpeg4" else Fraction(1, int(np.ceil(info.rate)))
        self.stream.codec_context.time_base = self.time_base
        self.stream.options = ENCODER_OPTIONS.get(CODECS[suffix], {})
        self.audio_in = self.audio_out = None
        if info.has_audio:
            with _open(source) as probe_container:
                template = probe_container.streams.audio[0]
                try:
                    self.audio_out = self.container.add_stream_from_template(template)
                except (ValueError, av.error.FFmpegError):
                    raise VideoError(f"{source}: its audio ({template.codec_context.name}) cannot be copied into a "
                                     f"{suffix} file; write to the input's own format instead") from None
        self.rate, self.written, self.last = info.rate, 0, -1

    def frame(self, frame: Frame, picture: np.ndarray) -> None:
        import av

        out = av.VideoFrame.from_ndarray(picture, format="rgb24")
        seconds = frame.time if frame.time is not None else Fraction(self.written) / self.rate
        pts = round(seconds / self.time_base)
        self.last = pts = max(pts, self.last + 1)  # strictly increasing, as every muxer demands
        out.pts, out.time_base = pts, self.time_base
        self.container.mux(self.stream.encode(out))
        self.written += 1

    def audio(self, packet: av.Packet) -> None:
        packet.stream = self.audio_out
        self.container.mux(packet)

    def close(self) -> None:
        self.container.mux(self.stream.encode())
        self.container.close()


def translate_video(translator: Translator, source: Path, target: Path, direction: str = "a2b",
                    size: int | None = None, face: bool = False, stable: bool = True, batch_size: int = 8,
                    character: torch.Tensor | None = None, progress: bool = True) -> VideoReport:
    """Translate every frame of `source` into `target` (its extension picks the container)."""
    suffix = target.suffix.lower()
    if suffix not in CODECS:
        raise VideoError(f"{target}: a video is written as {', '.join(sorted(CODECS))}")
    if character is not None:
        refuse_character_for(direction)
    size = translator.resolution if size is None else size
    translator.check_size(size)
    info = probe(source)
    if info.width * info.height > MAX_FRAME_PIXELS:
        raise VideoError(f"{source}: frames of {info.width}x{info.height} are over {MAX_FRAME_PIXELS:,} pixels; "
                         "scale the video down first (ffmpeg -vf scale=-2:2160)")
    model = FrameTranslator(translator, direction, size, face, float(info.rate), character, stable)
    frames: queue.Queue = queue.Queue(max(2, min(QUEUE_FRAMES, QUEUE_BYTES // (3 * info.width * info.height))))
    audio: queue.Queue = queue.Queue()
    failure: list[BaseException] = []
    stop = threading.Event()
    reader = threading.Thread(target=_decode, args=(source, info, frames, audio, failure, stop), daemon=True)
    bar = tqdm(total=info.frames or None, unit="frame", disable=not progress, desc=source.name, dynamic_ncols=True)
    started, done = time.monotonic(), 0
    try:
        with atomic_path(target) as tmp:
            writer = _Writer(tmp, suffix, info, source)
            encoder = _Encoder(writer, audio)
            reader.start()
            encoder.start()
            for batch in _batches(frames, batch_size):
                encoder.put(list(zip(batch, model([f.picture for f in batch]))))
                done += len(batch)
                bar.update(len(batch))
            encoder.finish()
            if failure:
                raise failure[0]
            if done == 0:
                raise VideoError(f"{source}: holds no video frames")
            if info.frames and done < info.frames * 0.98:  # containers' counts can be off by a frame or two
                log.warning("%s: only %d of the %d frames its header declares could be decoded (a file cut "
                            "short?); %s holds those", source, done, info.frames, target)
    except KeyboardInterrupt:
        stop.set()
        raise Interrupted(f"interrupted at frame {done:,} of {info.frames or '?'} of {source}: "
                          f"{target} was not written") from None
    finally:
        stop.set()
        _drain(frames)
        bar.close()
    return VideoReport(done, time.monotonic() - started)


def _drain(frames: queue.Queue) -> None:
    """Empty the queue so that a reader blocked on a full queue can see `stop` and end."""
    try:
        while True:
            frames.get_nowait()
    except queue.Empty:
        pass


def _batches(frames: queue.Queue, batch_size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    while (frame := frames.get()) is not None:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Encoder:
    """The encoding thread: writes translated frames and audio packets as they come."""

    def __init__(self, writer: _Writer, audio: queue.Queue) -> None:
        self.writer, self.audio = writer, audio
        self.work: queue.Queue = queue.Queue(max(1, QUEUE_FRAMES // 8))
        self.failure: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, pairs: list[tuple[Frame, np.ndarray]]) -> None:
        if self.failure:
            raise self.failure[0]
        self.work.put(pairs)

    def finish(self) -> None:
        self.work.put(None)
        self.thread.join()
        if self.failure:
            raise self.failure[0]

    def _run(self) -> None:
        audio_done = False
        try:
            while (pairs := self.work.get()) is not None:
                for frame, picture in pairs:
                    self.writer.frame(frame, picture)
                audio_done = self._drain_audio(block=False) or audio_done
            if not audio_done:
                self._drain_audio(block=True)
            self.writer.close()
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            self.failure.append(exc)
            while self.work.get() is not None:
                pass

    def _drain_audio(self, block: bool) -> bool:
        """Copy the audio packets read so far; True once the reader has sent its last one."""
        while True:
            try:
                packet = self.audio.get(block=block)
            except queue.Empty:
                return False
            if packet is None:
                return True
            if self.writer.audio_out is not None:
                self.writer.audio(packet)
