"""Checkpoints written by an earlier version still load, and translate to the same numbers.

tests/data holds tiny checkpoints written by the trainer of commit d53d282 (Twin-GAN, Twin-GAN
with learned character codes, CycleGAN), cut down to what translation reads, what that commit's
Translator made of one fixed input, and the layout of the full checkpoint (every entry, and the
names, order and shapes of every network's tensors), which resuming depends on. A refactoring
that renames a state-dict key, changes a default or moves a clamp fails here, not on a user's
months-old run. `record` is how the files were made (see tests/data/README.md); the tests never
call it: the point is that the files stay as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import gradient_image
from torch import Tensor

from twingan.search.embedding import Embedder
from twingan.infer.translator import Translator

DATA = Path(__file__).resolve().parent / "data"
FROZEN = ("twingan", "twingan_character", "cyclegan")
TRANSLATION_KEYS = ("format", "version", "model", "image_channels", "config", "images_seen", "ema", "gens")
"""What the stored files keep of a checkpoint: enough for `Translator.from_checkpoint`, at a
tenth of the size (optimizer moments and discriminators are most of a checkpoint)."""


def presets(scratch: Path) -> dict[str, Path]:
    """The tiny runs, as the training tests define them."""
    import test_cyclegan
    import test_training

    return {"twingan": test_training.tiny_preset(scratch / "twingan"),
            "twingan_character": test_training.tiny_preset(
                scratch / "twingan_character", model={"character": "learned", "condition_dim": 4,
                                                      "character_channels": 4}),
            "cyclegan": test_cyclegan.tiny_preset(scratch / "cyclegan")}


def layout(state: dict) -> dict:
    """Each checkpoint entry's shape: a network's tensors by name, in order, with their shapes;
    anything else by its type (config and RNG state are not layout)."""
    found = {}
    for key, value in state.items():
        if key in ("config", "rng"):
            continue
        if isinstance(value, dict) and value and all(isinstance(v, Tensor) for v in value.values()):
            found[key] = [[name, list(v.shape)] for name, v in value.items()]
        else:
            found[key] = type(value).__name__
    return found


def fixed_input(translator: Translator) -> Tensor:
    """(1, C, size, size) in [0, 1], the same on every machine."""
    shape = (1, translator.channels, translator.resolution, translator.resolution)
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


def outputs(translator: Translator) -> dict[str, Tensor]:
    """Everything inference offers, on the fixed input: both directions, the cycle, both reconstructions,
    the shared latent (Twin-GAN) and a reference character's code and its effect (learned codes)."""
    x = fixed_input(translator)
    found = {"a2b": translator.translate(x, "a2b"), "b2a": translator.translate(x, "b2a"),
             "cycle_a": translator.run(x * 2 - 1, "a2b", cycle=True)[1],
             "reconstruct_a": translator.reconstruct(x * 2 - 1, 0),
             "reconstruct_b": translator.reconstruct(x * 2 - 1, 1)}
    if translator.cfg.model.name == "twingan":
        found["latent_a"] = torch.from_numpy(Embedder(translator).embed(x * 2 - 1, "a"))
    if translator.character != "none":
        code = translator.character_code(gradient_image(24, seed=5))
        found |= {"code": code, "a2b_coded": translator.translate(x, "a2b", character=code)}
    return {k: v.detach().cpu() for k, v in found.items()}


CROSS_CPU_ATOL = 1e-4
"""How far outputs may move between CPU kinds. oneDNN picks other convolution kernels (AVX2 on AMD
EPYC, AVX-512/AMX on Intel Xeon) that sum in another order: measured worst case 1.46e-6 (cycle_a,
CycleGAN, AMD against the Intel recording). 1e-4 leaves ~70x room; what this test is for (a renamed
key, a changed default, a moved clamp) moves outputs by 1e-2 or more."""


@pytest.mark.parametrize("name", FROZEN)
def test_an_old_checkpoint_translates_as_it_did(name):
    translator = Translator.from_checkpoint(DATA / f"{name}.pt", "cpu")
    expected = torch.load(DATA / f"{name}_outputs.pt", weights_only=True)
    found = outputs(translator)
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(found[key], value, atol=CROSS_CPU_ATOL, rtol=0,
                                   msg=lambda detail, key=key: f"{name}: {key}: {detail}")


@pytest.mark.parametrize("name", FROZEN)
def test_a_new_run_writes_the_old_checkpoint_layout(name, tmp_path):
    from twingan.checkpoint import load_checkpoint
    from twingan.config import load_config
    from twingan.train.trainer import Trainer

    trainer = Trainer(load_config(presets(tmp_path)[name]), tmp_path / "run", progress=False)
    expected = json.loads((DATA / f"{name}_layout.json").read_text())
    assert layout(load_checkpoint(trainer.save())) == expected


def record(data: Path, scratch: Path) -> None:
    """Train each tiny run with the trainer of the day, keep its last checkpoint's translation
    entries, its layout and its outputs. Run by hand (tests/data/README.md), never by the tests."""
    from twingan.checkpoint import load_checkpoint
    from twingan.config import load_config
    from twingan.train.trainer import Trainer

    data.mkdir(exist_ok=True)
    for name, preset in presets(scratch).items():
        state = load_checkpoint(Trainer(load_config(preset), scratch / name / "run", progress=False).run().checkpoint)
        (data / f"{name}_layout.json").write_text(json.dumps(layout(state), indent=1) + "\n")
        torch.save({k: v for k, v in state.items() if k in TRANSLATION_KEYS}, data / f"{name}.pt")
        torch.save(outputs(Translator.from_checkpoint(data / f"{name}.pt", "cpu")), data / f"{name}_outputs.pt")
