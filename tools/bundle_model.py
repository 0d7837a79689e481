"""Ship a trained run as a bundled model: its inference weights as safetensors in twingan/assets/models/
and an entry in that folder's manifest.json (SHA-256, size, resolution, images seen, training data).

    python tools/bundle_model.py runs/bundle/cpu64 --name selfie2anime-64 --default \
        --trained-on "selfie2anime (2,700 photos + 2,700 anime faces, young women)"

Only the family's inference entry of the checkpoint is kept (Twin-GAN: the EMA encoder and
generator with their batch-norm statistics), as stored (float32), so that the bundled model
translates to the same pixels as the checkpoint; the tool checks that it does before it reports. Afterwards
re-record the pixel test: TWINGAN_RECORD_BUNDLED=1 pytest tests/test_bundled.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from twingan.bundled import BundledModel, write_bundle
from twingan.checkpoint import find_checkpoint, load_checkpoint
from twingan.config import config_to_dict
from twingan.infer.translator import Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="A run folder (its newest checkpoint) or a checkpoint file.")
    parser.add_argument("--name", required=True, help="The bundled model's name, e.g. selfie2anime-64.")
    parser.add_argument("--trained-on", required=True, help="The training data, in a few words.")
    parser.add_argument("--default", action="store_true", help="Make it the model used without --checkpoint.")
    args = parser.parse_args()

    path = find_checkpoint(args.run)
    translator = Translator.from_checkpoint(path, "cpu")
    state = load_checkpoint(path)
    key = translator.inference.state_key
    tensors = {name: tensor.detach().clone() for name, tensor in state[key].items()}
    entry = BundledModel(name=args.name, file=f"{args.name}.safetensors", sha256="", bytes=0,
                         model=translator.model, resolution=translator.resolution,
                         images_seen=translator.images_seen, trained_on=args.trained_on, default=args.default)
    recorded = write_bundle(tensors, config_to_dict(translator.cfg), key, translator.images_seen,
                            translator.channels, entry)

    bundled = Translator.pretrained(args.name, "cpu")
    probe = torch.rand(4, translator.channels, translator.resolution, translator.resolution,
                       generator=torch.Generator().manual_seed(0))
    difference = max(float((bundled.translate(probe, d) - translator.translate(probe, d)).abs().max())
                     for d in ("a2b", "b2a"))
    print(f"wrote {recorded.path}: {recorded.bytes / 2**20:.2f} MB, SHA-256 {recorded.sha256}, "
          f"{recorded.images_seen:,} images, {recorded.resolution} px; largest difference to {path}: {difference:.1e}")
    if difference > 0:
        raise SystemExit("the bundled model does not translate as the checkpoint does")


if __name__ == "__main__":
    main()
