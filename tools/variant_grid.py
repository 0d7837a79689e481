"""The same 8 held-out pictures through several runs, one row per run, for docs/quality.md.

    python tools/variant_grid.py runs/quality/runs/v-base runs/quality/runs/unet16 -o docs/x.png
    python tools/variant_grid.py RUN... --direction b2a -o docs/y.png      # anime -> photo
    python tools/variant_grid.py bundled:selfie2anime-64 RUN -o docs/z.png  # a bundled model's row too

Uses tools/quality_run.py's held-out split (the first 8 test pictures of the direction's source
domain), so the rows line up with docs/quality_side_by_side.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quality_run import GRID_PHOTOS, ROOT, side_by_side, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--direction", choices=["a2b", "b2a"], default="a2b")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "selfie2anime")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "quality")
    args = parser.parse_args()
    data = split(args.data, args.work)
    source = data["test_a" if args.direction == "a2b" else "test_b"]
    side_by_side({str(run): run for run in args.runs}, sorted(source.iterdir())[:GRID_PHOTOS], args.out,
                 args.direction)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
