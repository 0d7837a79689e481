"""Presets load, overrides win, and every refusal names the key and where it came from."""

from __future__ import annotations

import pytest
import yaml

from twingan.config import MODELS, PRESET_DIR, Config, CycleGANConfig, load_config, save_config
from twingan.errors import UserError


@pytest.mark.parametrize("preset", sorted(PRESET_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_preset_loads_as_its_model(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, MODELS[preset.stem.split("_")[0]]) and cfg.model.name == preset.stem.split("_")[0]


def test_model_name_picks_the_config_class_and_refuses_other_models_keys():
    assert isinstance(load_config(None), Config)
    assert isinstance(load_config(None, ["model.name=cyclegan"]), CycleGANConfig)
    with pytest.raises(UserError, match="unknown config key 'model.channel_base' from override"):
        load_config(None, ["model.name=cyclegan", "model.channel_base=8"])
    with pytest.raises(UserError, match="unknown model 'stylegan' .*choose twingan, cyclegan"):
        load_config(None, ["model.name=stylegan"])


def test_published_preset_has_the_paper_recipe():
    cfg = load_config("twingan_selfie2anime_256")
    assert cfg.train.batch_size[256] == 3 and cfg.train.batch_size[128] == 4
    assert (cfg.train.lr, cfg.train.beta1, cfg.train.beta2) == (1e-4, 0.5, 0.99)
    assert cfg.loss.penalty == "dragan" and cfg.loss.penalty_weight == 0.25 and cfg.loss.semantic == 0.1


def test_overrides_win_over_preset_and_keep_siblings(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("train:\n  lr: 3.0e-4\n  batch_size: {64: 16}\ndata:\n  hflip: false\n")
    cfg = load_config(preset, ["train.lr=2e-4", "train.batch_size.128=2", "data.domain_a=/x/photos"])
    assert cfg.train.lr == 2e-4
    assert cfg.train.batch_size[64] == 16 and cfg.train.batch_size[128] == 2 and cfg.train.batch_size[4] == 8
    assert cfg.data.hflip is False and cfg.data.domain_a == "/x/photos"


def test_unknown_key_in_preset_is_named_with_the_file_and_a_suggestion(tmp_path):
    preset = tmp_path / "typo.yaml"
    preset.write_text("data:\n  hflipp: true\n")
    with pytest.raises(UserError) as info:
        load_config(preset)
    message = str(info.value)
    assert "'data.hflipp'" in message and str(preset) in message and "did you mean 'data.hflip'" in message


def test_unknown_section_on_command_line_is_refused():
    with pytest.raises(UserError, match="unknown config key 'trian' from override 'trian.lr=1'"):
        load_config(None, ["trian.lr=1"])


@pytest.mark.parametrize("override, key", [
    ("train.lr=fast", "train.lr"),
    ("model.resolution=big", "model.resolution"),
    ("runtime.device=tpu", "runtime.device"),
    ("data.random_crop=1.5", "data.random_crop"),
    ("train.batch_size.64=0", "train.batch_size.64"),
    ("data.hflip=maybe", "data.hflip"),
])
def test_wrong_type_or_range_names_key_and_origin(override, key):
    with pytest.raises(UserError) as info:
        load_config(None, [override])
    assert f"config key '{key}' from override '{override}'" in str(info.value)


def test_wrong_type_in_preset_names_the_file(tmp_path):
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  phase_images: lots\n")
    with pytest.raises(UserError, match=f"'train.phase_images' from preset {preset}"):
        load_config(preset)


def test_preset_key_keeps_its_origin_when_an_override_sets_a_sibling(tmp_path):
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  phase_images: lots\n")
    with pytest.raises(UserError, match=f"'train.phase_images' from preset {preset}"):
        load_config(preset, ["train.lr=2e-4"])


@pytest.mark.parametrize("text, message", [("- a\n- b\n", "must be a mapping"), ("a: [1,\n", "not valid YAML")])
def test_malformed_preset_is_refused(tmp_path, text, message):
    preset = tmp_path / "odd.yaml"
    preset.write_text(text)
    with pytest.raises(UserError, match=message):
        load_config(preset)


def test_missing_preset_lists_the_known_ones():
    with pytest.raises(UserError, match="'nope' not found.*twingan_selfie2anime_256"):
        load_config("nope")


def test_malformed_override_is_refused():
    with pytest.raises(UserError, match="section.key=value"):
        load_config(None, ["train.lr"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config("twingan_selfie2anime_256", ["data.domain_b=/anime", "train.seed=7"])
    target = tmp_path / "run" / "config.yaml"
    save_config(cfg, target)
    assert load_config(target) == cfg
    assert yaml.safe_load(target.read_text())["model"]["max_channels"] == 256
    assert [p.name for p in target.parent.iterdir()] == ["config.yaml"]


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
"""Nested list aliases: a few hundred bytes that expand to 9^9 items."""


def test_a_preset_with_yaml_aliases_is_refused_in_one_line(tmp_path):
    """Second hostile pass, item 10: the expansion ran out of memory."""
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS)
    with pytest.raises(UserError, match="aliases .* are not allowed"):
        load_config(tmp_path / "laughs.yaml")
    (tmp_path / "dict.yaml").write_text("base: &b {lr: 1}\ntrain: *b\n")
    with pytest.raises(UserError, match="aliases .* are not allowed"):
        load_config(tmp_path / "dict.yaml")


def test_an_override_with_an_alias_is_not_expanded(tmp_path):
    with pytest.raises(UserError):
        load_config("twingan_smoke", ["model.character_tags=[*a, *a]"])


def test_a_preset_that_is_not_utf8_is_refused_naming_it(tmp_path):
    (tmp_path / "latin.yaml").write_bytes(b"train:\n  lr: 0.1 # caf\xe9\n")
    with pytest.raises(UserError, match="latin.yaml is not UTF-8"):
        load_config(tmp_path / "latin.yaml")
