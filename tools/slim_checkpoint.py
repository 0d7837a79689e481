"""A checkpoint cut down to what translation and `--init-from` need: the family's inference
weights (Twin-GAN: the EMA encoder and generator), the config and the counts; no critics and no
optimiser state, so about a fifth of the size.

    python tools/slim_checkpoint.py /work/campaign/run128 -o campaign/selfie2anime-128-stretch1.pt

The 128 px campaign (docs/quality.md) keeps its model in the repository this way at the end of
each stretch, so that the next session, on whatever machine, continues with
`twingan train twingan_cpu_128 --init-from campaign/....pt train.start_resolution=128 ...`.
It is still a checkpoint: `twingan translate --checkpoint`, `twingan eval` and the index take it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twingan.checkpoint import find_checkpoint, load_checkpoint, write_checkpoint
from twingan.models import family

KEPT = ("model", "image_channels", "config", "images_seen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="A run folder (its newest checkpoint) or a checkpoint file.")
    parser.add_argument("-o", "--out", type=Path, required=True, help="The slim checkpoint to write.")
    args = parser.parse_args()
    path = find_checkpoint(args.run)
    state = load_checkpoint(path)
    key = family(state["model"]).inference.state_key
    slim = {**{k: state[k] for k in KEPT}, key: {name: t.detach().clone() for name, t in state[key].items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(slim, args.out)
    print(f"wrote {args.out}: {args.out.stat().st_size / 2**20:.2f} MB from {path} ({state['images_seen']:,} images)")


if __name__ == "__main__":
    main()
