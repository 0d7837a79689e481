"""Character conditioning: learned and illust2vec codes in training, `translate --target-character` and `--tags`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_image_folder, write_preset
from PIL import Image
from test_illust2vec import caffemodel, small_net
from test_training import TINY

from illust2vec.convert import convert_caffemodel
from twingan.cli import main
from twingan.config import load_config
from twingan.domains import DOMAIN_A
from twingan.errors import UserError
from twingan.models.twingan.networks import DomainNorm2d, TwinGAN
from twingan.train.trainer import Trainer
from twingan.infer.translator import Translator

HUES = [(230, 40, 40), (40, 200, 60), (50, 80, 230), (240, 220, 50), (200, 60, 220), (40, 210, 210),
        (250, 150, 40), (120, 120, 120)]


def colour_characters(folder: Path, size: int = 24) -> list[Path]:
    """Anime stand-ins: the same drawing in eight clearly different colours."""
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size]
    shade = (0.6 + 0.4 * (xx + yy) / (2 * size))[:, :, None]
    paths = []
    for i, hue in enumerate(HUES):
        paths.append(folder / f"char_{i}.png")
        Image.fromarray((shade * np.array(hue)).astype(np.uint8)).save(paths[-1])
    return paths


def character_preset(tmp: Path, **sections) -> Path:
    if not (tmp / "a").exists():
        write_image_folder(tmp / "a", 8, size=24, seed=0)
        colour_characters(tmp / "b")
    return write_preset(tmp, TINY, sections, image_size=24)


def tiny_tagger(tmp: Path) -> Path:
    path = tmp / "tagger.caffemodel"
    path.write_bytes(caffemodel(small_net().state_dict(), legacy=False))
    convert_caffemodel(path, tmp / "tagger.safetensors")
    return tmp / "tagger.safetensors"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny run per character source, plus one without."""
    found = {}
    for source, model in (("learned", {"character": "learned", "condition_dim": 8}),
                          ("none", {})):
        tmp = tmp_path_factory.mktemp(source)
        Trainer(load_config(character_preset(tmp, model=model)), tmp / "run", progress=False).run()
        found[source] = tmp / "run"
    tmp = tmp_path_factory.mktemp("illust2vec")
    model = {"character": "illust2vec", "illust2vec_weights": str(tiny_tagger(tmp)),
             "character_tags": ["green hair", "blue eyes", "glasses"]}
    Trainer(load_config(character_preset(tmp, model=model, train={"phase_images": 4})), tmp / "run",
            progress=False).run()
    found["illust2vec"] = tmp / "run"
    return found


def test_learned_codes_are_carried_by_the_translations(tmp_path):
    """The encoder's codes spread apart as it learns, so the raw consistency loss need not fall;
    what must happen is that a translation carries its own target code and not another's."""
    preset = character_preset(tmp_path, model={"character": "learned", "condition_dim": 8},
                              train={"start_resolution": 8, "phase_images": 1200, "lr": 5e-4,
                                     "checkpoint_every": 100_000})
    Trainer(load_config(preset), tmp_path / "run", progress=False).run()
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]

    def ratio(rows: list[dict]) -> float:
        return sum(r["character"] for r in rows) / sum(r["character_mismatch"] for r in rows)

    assert ratio(logged[:30]) > 0.8
    assert ratio(logged[-60:]) < 0.6, (ratio(logged[:30]), ratio(logged[-60:]))
    assert np.mean([r["character_contrastive"] for r in logged[-30:]]) < np.mean(
        [r["character_contrastive"] for r in logged[:30]])


def test_references_change_the_output_and_the_same_reference_repeats(runs):
    """Compared as float tensors: after a few steps the code's effect is still below one grey level."""
    translator = Translator.from_checkpoint(runs["learned"], "cpu")
    photo = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    red, green = (Image.open(runs["learned"].parent / "b" / f"char_{i}.png") for i in (0, 1))
    outputs = [translator.translate(photo, character=ref) for ref in (red, green, red)]
    assert (outputs[0] - outputs[1]).abs().max() > 1e-6
    assert torch.equal(outputs[0], outputs[2])
    assert (translator.translate(photo) - outputs[0]).abs().max() > 1e-6


def test_the_condition_moves_the_anime_norms_only():
    cfg = load_config(None, ["model.resolution=8", "model.channel_base=32", "model.max_channels=16",
                             "model.character=learned", "model.condition_dim=4"]).model
    net = TwinGAN(cfg).eval()
    for module in net.modules():
        if hasattr(module, "fc_gamma"):
            torch.nn.init.normal_(module.fc_gamma.weight)
            torch.nn.init.normal_(module.fc_beta.weight)
    latent, skips = net.encoder(torch.rand(1, 3, 8, 8), DOMAIN_A, 8)
    one, two = torch.randn(2, 1, 4)
    assert not torch.equal(net.generator(latent, skips, 1, 8, condition=one, source=DOMAIN_A),
                           net.generator(latent, skips, 1, 8, condition=two, source=DOMAIN_A))
    with pytest.raises(ValueError, match="anime"):
        net.generator(latent, skips, DOMAIN_A, 8, condition=one, source=DOMAIN_A)


def test_cli_writes_one_output_per_reference(tmp_path, runs):
    photo = sorted((runs["learned"].parent / "a").iterdir())[0]
    refs = [str(runs["learned"].parent / "b" / f"char_{i}.png") for i in (0, 2)]
    args = ["translate", str(photo), "-c", str(runs["learned"]), "-o", str(tmp_path / "me.png")]
    result = CliRunner().invoke(main, [*args, "--target-character", refs[0], "--target-character", refs[1]])
    assert result.exit_code == 0, result.output
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == ["me-char_0.png", "me-char_2.png"]
    translator = Translator.from_checkpoint(runs["learned"], "cpu")
    api = translator.translate(Image.open(photo).convert("RGB"), character=Image.open(refs[0]).convert("RGB"))
    assert np.array_equal(np.asarray(api), np.asarray(Image.open(tmp_path / "me-char_0.png")))
    folder = CliRunner().invoke(main, ["translate", str(runs["learned"].parent / "a"), "-c", str(runs["learned"]),
                                       "-o", str(tmp_path / "out"), "--target-character", refs[0],
                                       "--target-character", refs[1]])
    assert folder.exit_code == 0, folder.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["char_0", "char_2"]
    assert len(list((tmp_path / "out" / "char_2").iterdir())) == 8


def test_illust2vec_source_trains_and_takes_tags_and_references(tmp_path, runs):
    translator = Translator.from_checkpoint(runs["illust2vec"], "cpu")
    code = translator.tags_code(["green hair", "glasses"])
    assert code.tolist() == [[1.0, 0.0, 1.0]]
    reference = Image.open(runs["illust2vec"].parent / "b" / "char_1.png")
    assert translator.character_code(reference).shape == (1, 3)
    result = CliRunner().invoke(main, ["translate", str(runs["illust2vec"].parent / "a" / "img_000.png"),
                                       "-c", str(runs["illust2vec"]), "-o", str(tmp_path / "t.png"),
                                       "--tags", "green hair, blue eyes"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "t.png").size == (8, 8)
    unknown = CliRunner().invoke(main, ["translate", str(runs["illust2vec"].parent / "a" / "img_000.png"),
                                        "-c", str(runs["illust2vec"]), "-o", str(tmp_path / "u.png"),
                                        "--tags", "red hair"])
    assert unknown.exit_code == 1 and "'red hair'" in unknown.output and "green hair" in unknown.output


@pytest.mark.parametrize(("source", "extra", "message"), [
    ("none", ["--target-character", "REF"], "trained with a character source"),
    ("learned", ["--tags", "green hair"], "give a reference picture instead"),
    ("learned", ["--target-character", "REF", "--direction", "b2a"], "b2a makes photos"),
    ("learned", ["--target-character", "missing.png"], "reference character picture"),
])
def test_character_mistakes_get_one_line(tmp_path, runs, source, extra, message):
    photo = sorted((runs[source].parent / "a").iterdir())[0]
    ref = str(runs["learned"].parent / "b" / "char_0.png")
    extra = [ref if e == "REF" else str(tmp_path / e) if e.endswith(".png") else e for e in extra]
    result = CliRunner().invoke(main, ["translate", str(photo), "-c", str(runs[source]),
                                       "-o", str(tmp_path / "x.png"), *extra])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.png").exists()


def test_character_config_mistakes_are_named(tmp_path):
    with pytest.raises(UserError, match="condition_dim"):
        Trainer(load_config(character_preset(tmp_path, model={"character": "learned"})), tmp_path / "r1",
                progress=False)
    with pytest.raises(UserError, match="illust2vec_weights"):
        Trainer(load_config(character_preset(tmp_path, model={"character": "illust2vec"})), tmp_path / "r2",
                progress=False)
    weights = tiny_tagger(tmp_path)
    with pytest.raises(UserError, match="'green hairs'"):
        Trainer(load_config(character_preset(tmp_path, model={"character": "illust2vec",
                                                              "illust2vec_weights": str(weights),
                                                              "character_tags": ["green hairs"]})),
                tmp_path / "r3", progress=False)


def test_a_character_model_exports_with_its_mean_code(tmp_path, runs):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    result = CliRunner().invoke(main, ["export", "-c", str(runs["learned"]), "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime agrees with PyTorch" in result.output


def test_character_parameters_have_their_own_optimisers(tmp_path):
    """The encoder learns only from its contrastive loss; the character FCs at the domain-switch lr."""
    preset = character_preset(tmp_path, model={"character": "learned", "condition_dim": 8})
    recipe = Trainer(load_config(preset), tmp_path / "run", progress=False).recipe
    rest, switch = (set(map(id, group["params"])) for group in recipe.opt_g.param_groups)
    fcs = {id(p) for m in recipe.net.modules() if isinstance(m, DomainNorm2d) and m.condition_dim
           for p in (*m.fc_gamma.parameters(), *m.fc_beta.parameters())}
    encoder = set(map(id, recipe.net.character.parameters()))
    assert fcs and fcs <= switch
    assert encoder == set(map(id, recipe.opt_c.param_groups[0]["params"]))
    assert not encoder & (rest | switch)
