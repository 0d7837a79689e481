"""Face mode on a phone photo with several faces: detection, then the faces through the networks
one by one (what `translate --face` did before the one batched path) against in one batch.

    python tools/bench_faces.py                      # the bundled model, 6 faces, 3 MP photo
    python tools/bench_faces.py --faces 12 --runs 9

The photo is skimage's astronaut pasted `--faces` times into a 2400 x 1600 canvas; the first line
printed says how many faces the cascade found. Then the median, best and worst seconds of each
part over --runs, faces/s of both translation paths and the peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import skimage.data
import torch
from PIL import Image

from twingan.infer.face_paste import face_crops, paste_faces
from twingan.infer.translator import Translator


def phone_photo(faces: int, size: tuple[int, int] = (2400, 1600)) -> Image.Image:
    """A grey canvas with `faces` astronaut portraits in two rows, each as large as fits (the
    detector searches a copy about 1/5 the size, so small faces would go unseen)."""
    canvas = Image.new("RGB", size, (120, 120, 120))
    columns = max(1, (faces + 1) // 2)
    side = min(size[0] // columns, size[1] // 2) - 20
    portrait = Image.fromarray(skimage.data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)
    for i in range(faces):
        canvas.paste(portrait, (10 + (i % columns) * (side + 20), 10 + (i // columns) * (side + 20)))
    return canvas


def timed(runs: int, work) -> tuple[list[float], object]:
    seconds, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def summary(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.3f} s (best {min(seconds):.3f}, worst {max(seconds):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=6)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--model", default=None, help="a bundled model's name (default: the default one)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    translator = Translator.pretrained(args.model, "cpu")
    photo = phone_photo(args.faces)
    size = translator.resolution
    detect, (boxes, crops) = timed(args.runs, lambda: face_crops(photo, "a2b", size))
    one_by_one, _ = timed(args.runs, lambda: [translator.translate(crop, "a2b", size) for crop in crops])
    batched, faces = timed(args.runs, lambda: translator.translate_pictures(crops, "a2b", size))
    paste, _ = timed(args.runs, lambda: paste_faces(photo, boxes, faces))
    print(f"{photo.width}x{photo.height} photo, {len(boxes)} faces found of {args.faces}, model at {size} px, "
          f"{torch.get_num_threads()} threads")
    print(f"detect faces:           {summary(detect)}")
    print(f"translate one by one:   {summary(one_by_one)}  "
          f"{len(crops) / statistics.median(one_by_one):.1f} faces/s")
    print(f"translate in one batch: {summary(batched)}  {len(crops) / statistics.median(batched):.1f} faces/s")
    print(f"paste back:             {summary(paste)}")
    print(f"peak resident memory:   {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
