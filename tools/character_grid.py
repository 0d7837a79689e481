"""A character-conditioning sheet: rows are photos, columns are reference characters.

The top row shows the references, the first column the photos (as the model sees them), and
each cell the photo translated with that reference's character code; a last column shows the
default translation (mean code) for comparison. It also prints a rough hair-colour score: the mean
colour of the top quarter of each output (where the hair is in aligned faces) is compared with
that of every reference; the score is how often the nearest reference is the one it was given
(chance is 1 / references).

    python tools/character_grid.py --checkpoint runs/char64 \
        --photos photo1.jpg photo2.jpg --references pink.png green.png blue.png -o docs/character_grid.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import make_grid

from twingan.atomic import atomic_path
from twingan.data.images import load_image
from twingan.data.pictures import to_picture, to_unit_range
from twingan.infer.translator import Translator


def character_sheet(translator: Translator, photos: list[Path], references: list[Path]) -> tuple[torch.Tensor, float]:
    """The sheet as one CHW tensor in [0, 1], and the hair-colour score."""
    blank = torch.ones(3, translator.resolution, translator.resolution)
    refs = to_unit_range(torch.stack([translator.prepare(load_image(r)) for r in references]))
    codes = [translator.character_code(load_image(r)) for r in references]
    tiles, outputs = [blank, *refs, blank], []
    for path in photos:
        photo = translator.prepare(load_image(path))[None]
        row = to_unit_range(torch.stack([translator.run(photo, character=code)[0].cpu() for code in codes]))
        outputs.append(row)
        tiles += [to_unit_range(photo[0]), *row, to_unit_range(translator.run(photo)[0].cpu())]
    sheet = make_grid(torch.stack(tiles).clamp(0, 1), nrow=len(references) + 2, padding=2, pad_value=1.0)
    return sheet, hair_colour_score(torch.stack(outputs), refs)


def hair_colour_score(outputs: torch.Tensor, refs: torch.Tensor) -> float:
    """outputs (photos, refs, C, H, W), refs (refs, C, H, W): how often an output's top-quarter
    mean colour is nearest to its own reference's."""
    top = refs.shape[-2] // 4
    ref_colours = refs[..., :top, :].mean(dim=(-2, -1))
    out_colours = outputs[..., :top, :].mean(dim=(-2, -1))
    nearest = torch.cdist(out_colours, ref_colours[None].expand(len(outputs), -1, -1)).argmin(-1)
    return float((nearest == torch.arange(len(refs))).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--photos", nargs="+", type=Path, required=True)
    parser.add_argument("--references", nargs="+", type=Path, required=True)
    parser.add_argument("--scale", type=int, default=2, help="enlarge the sheet this many times (nearest)")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    translator = Translator.from_checkpoint(args.checkpoint, "cpu")
    grid, score = character_sheet(translator, args.photos, args.references)
    sheet = to_picture(grid)
    sheet = sheet.resize((sheet.width * args.scale, sheet.height * args.scale), resample=0)
    with atomic_path(args.out) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"wrote {args.out}: {len(args.photos)} photos x {len(args.references)} references (+ mean code)")
    print(f"hair colour follows the reference (nearest top-quarter colour): {score:.0%} "
          f"(chance {1 / len(args.references):.0%})")


if __name__ == "__main__":
    main()
