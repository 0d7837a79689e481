"""The pictures of the bundled model for README.md and docs/model-card.md: held-out photos and what
it makes of them (docs/bundled_examples.png), held-out anime pictures and their photo versions
(docs/bundled_examples_b2a.png), and people outside the training data's young women
(docs/bundled_people.png: the two portraits that ship with scikit-image, a woman in her forties and
a man in profile; the only such pictures on the development machine).

    python tools/bundled_examples.py                    # the default bundled model
    python tools/bundled_examples.py --name NAME --count 16

Uses tools/quality_run.py's held-out split (pictures the bundled model never trained on), first
COUNT of each test folder, 2x enlarged.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import skimage.data
from PIL import Image
from quality_run import GRID_PHOTOS, ROOT, split, translation_grid

from twingan.infer.faces import detect_faces, square_crop_box
from twingan.infer.translator import Translator

CAMERAMAN_HEAD = (135, 45, 295, 205)
"""The face detector finds no face in the cameraman's profile: his head, boxed by hand."""


def people(folder: Path) -> list[Path]:
    """Square face crops of scikit-image's two portraits, saved in `folder`."""
    astronaut = Image.fromarray(skimage.data.astronaut())
    crops = {"astronaut": astronaut.crop(square_crop_box(detect_faces(astronaut, "photo")[0], astronaut.size)),
             "cameraman": Image.fromarray(skimage.data.camera()).convert("RGB").crop(CAMERAMAN_HEAD)}
    for name, crop in crops.items():
        crop.save(folder / f"{name}.png")
    return [folder / f"{name}.png" for name in crops]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="A bundled model (default: the default one).")
    parser.add_argument("--count", type=int, default=GRID_PHOTOS)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "selfie2anime")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "quality")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    data = split(args.data, args.work)
    translator = Translator.pretrained(args.name, "cpu")
    for direction, folder, name in (("a2b", "test_a", "bundled_examples.png"),
                                    ("b2a", "test_b", "bundled_examples_b2a.png")):
        translation_grid([translator], sorted(data[folder].iterdir())[:args.count], args.out / name, direction)
        print(f"wrote {args.out / name}")
    with tempfile.TemporaryDirectory() as scratch:
        translation_grid([translator], people(Path(scratch)), args.out / "bundled_people.png")
    print(f"wrote {args.out / 'bundled_people.png'}")


if __name__ == "__main__":
    main()
