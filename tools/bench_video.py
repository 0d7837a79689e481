"""Video translation speed: frames/s end to end and the share of each stage, for a 720p clip.

Builds an untrained checkpoint of the preset (speed does not depend on training; see
bench_translate.py) and a 720p clip with one face (scikit-image's astronaut, drifting across a
grey frame, --seconds long at 25 frames/s), then times
  1. `translate_video` end to end in face mode (decode, detect/track, translate, paste, encode,
     stabiliser on), the pipeline's threads overlapping as in real use;
  2. each stage alone over the same frames, to show where the time goes (the shares add up to
     more than the pipeline's time when decoding and encoding overlap the model);
  3. flicker with and without the stabiliser on 2 seconds of the face holding still under sensor
     noise (grey-level sigma 4): mean absolute change between consecutive output frames over the
     same for the input frames. Give a trained --checkpoint for this figure to mean anything.

    python tools/bench_video.py --preset twingan_cpu_64
    python tools/bench_video.py --preset twingan_selfie2anime_256 --seconds 4
    python tools/bench_video.py --preset twingan_selfie2anime_256 --device cuda
    python tools/bench_video.py --checkpoint runs/cpu64          # a trained model's flicker
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import skimage.data
import torch
from bench_translate import make_checkpoint
from PIL import Image

from twingan.infer.face_paste import paste_faces
from twingan.infer.face_track import FaceTracker
from twingan.infer.translator import Translator
from twingan.infer.video import FrameTranslator, Stabiliser, flicker_ratio, translate_video

WIDTH, HEIGHT, RATE = 1280, 720, 25


def make_clip(path: Path, seconds: float, still: bool = False) -> list[np.ndarray]:
    """A 720p H.264 clip of the astronaut's face drifting slowly across a grey frame, or holding
    still under sensor noise."""
    face = Image.fromarray(skimage.data.astronaut()).resize((480, 480))
    noise = np.random.default_rng(0)
    frames = []
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=RATE)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    for i in range(round(seconds * RATE)):
        canvas = Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90))
        canvas.paste(face, (300, 120) if still else (300 + 2 * i, 120 + round(10 * np.sin(i / 10))))
        frame = np.asarray(canvas)
        if still:
            frame = np.clip(frame + noise.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frames[-1], format="rgb24")))
    container.mux(stream.encode())
    container.close()
    return frames


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def stage_times(translator: Translator, clip: Path, frames: list[np.ndarray], tmp: Path,
                batch_size: int) -> dict[str, float]:
    """Seconds each stage takes alone over the clip's frames."""
    pictures = [Image.fromarray(f) for f in frames]
    size = translator.resolution
    times = {"decode": timed(lambda: [f.to_ndarray(format="rgb24") for f in av.open(str(clip)).decode(video=0)])}
    tracker = FaceTracker("photo", RATE)
    boxes = []
    times["detect + track"] = timed(lambda: boxes.extend([b for _, b in tracker.update(p)] for p in pictures))
    crops = [p.resize((size, size), Image.Resampling.LANCZOS, box=b[0]) for p, b in zip(pictures, boxes) if b]
    model = FrameTranslator(translator, "a2b", size, face=False, rate=RATE, character=None, stable=False)
    patches: list[Image.Image] = []
    times["translate"] = timed(lambda: [patches.extend(model._translate(crops[i:i + batch_size]))
                                        for i in range(0, len(crops), batch_size)])
    pasted = []
    times["paste"] = timed(lambda: pasted.extend(np.asarray(paste_faces(p, b, [patch])) for p, b, patch
                                                 in zip(pictures, boxes, patches)))
    stabiliser = Stabiliser()
    times["stabilise"] = timed(lambda: [stabiliser(f, o) for f, o in zip(frames, pasted)])

    def encode() -> None:
        container = av.open(str(tmp / "encode.mp4"), "w")
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for frame in pasted:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
        container.close()
    times["encode"] = timed(encode)
    return times


def flicker(translator: Translator, tmp: Path) -> dict[bool, float]:
    """The flicker ratio of a still, noisy clip, without and with the stabiliser."""
    clip = tmp / "still.mp4"
    make_clip(clip, 2.0, still=True)
    frames = [f.to_ndarray(format="rgb24") for f in av.open(str(clip)).decode(video=0)]
    ratios = {}
    for stable in (False, True):
        translate_video(translator, clip, tmp / "still-out.mp4", face=True, stable=stable, progress=False)
        outputs = [f.to_ndarray(format="rgb24") for f in av.open(str(tmp / "still-out.mp4")).decode(video=0)]
        ratios[stable] = flicker_ratio(frames, outputs)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="twingan_cpu_64")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--checkpoint", help="a trained checkpoint or run folder instead of an untrained --preset")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        checkpoint = args.checkpoint or make_checkpoint(args.preset, tmp, args.device)
        translator = Translator.from_checkpoint(checkpoint, args.device)
        clip = tmp / "clip.mp4"
        frames = make_clip(clip, args.seconds)
        seconds = timed(lambda: translate_video(translator, clip, tmp / "out.mp4", face=True,
                                                batch_size=args.batch_size, progress=False))
        stages = stage_times(translator, clip, frames, tmp, args.batch_size)
        ratios = flicker(translator, tmp)
        peak = (torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    total = sum(stages.values())
    print(f"{args.checkpoint or 'untrained ' + args.preset} ({translator.resolution} px), device {args.device}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, PyAV {av.__version__}")
    print(f"{len(frames)} frames of {WIDTH}x{HEIGHT}, one face, --face with the stabiliser: "
          f"{len(frames) / seconds:.1f} frames/s end to end ({seconds:.1f} s), peak "
          f"{'CUDA allocated' if args.device == 'cuda' else 'RSS'} {peak:.0f} MB")
    print("each stage alone: " + ", ".join(f"{k} {v / len(frames) * 1000:.1f} ms/frame ({v / total:.0%})"
                                           for k, v in stages.items()))
    print(f"flicker ratio, face held still under noise: {ratios[False]:.3f} without the stabiliser, "
          f"{ratios[True]:.3f} with it")


if __name__ == "__main__":
    main()
