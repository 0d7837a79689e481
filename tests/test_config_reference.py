"""docs/config.md matches the schema, and `twingan config --explain` tells a user what each key of a run is."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from twingan.cli import main
from twingan.config import MODELS, config_to_dict, load_config
from twingan.cli.config_reference import REFERENCE_PATH, WRITER, family_keys, reference_markdown


def _row(markdown: str, key: str, after: str = "") -> list[str]:
    """The table cells of `key`'s row (the first one after the line starting with `after`)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after)) if after else 0
    line = next(line for line in lines[start:] if line.startswith(f"| `{key}`"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_docs_config_md_is_up_to_date():
    assert REFERENCE_PATH.read_text(encoding="utf-8") == reference_markdown(), (
        f"docs/config.md is out of date with twingan/config.py: run `{WRITER}`")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_key_of_every_family_is_listed_with_a_meaning(name):
    listed = {k.key: k for _, _, keys in family_keys(MODELS[name]) for k in keys}
    resolved = config_to_dict(MODELS[name]())
    assert set(listed) == {f"{section}.{key}" for section, values in resolved.items() for key in values}
    assert [k for k, doc in listed.items() if not doc.meaning or not doc.type] == []


def test_reference_shows_types_ranges_choices_and_each_familys_defaults():
    text = reference_markdown()
    assert _row(text, "data.random_crop") == [
        "`data.random_crop`", "float", "`0.8`", ">= 0.25, <= 1.0",
        "Side of the random crop as a fraction of the picture (1.0 disables it)."]
    assert _row(text, "loss.gan")[3] == "`nonsaturating` / `hinge` / `lsgan`"
    assert _row(text, "train.batch_size")[1:4] == [
        "dict[int, int]", "`{4: 8, 8: 8, 16: 8, 32: 8, 64: 8, 128: 4, 256: 3, 512: 2}`", "values > 0, <= 4096"]
    assert _row(text, "train.max_minutes")[1] == "float or null"
    assert _row(text, "train.lr")[2] == "`0.0001`"
    assert _row(text, "train.lr", after="## `model.name: cyclegan`")[2] == "`0.0002`"
    # CycleGAN's train section only redefines LoopConfig's defaults: the meaning comes from the base class.
    assert _row(text, "train.log_every", after="## `model.name: cyclegan`")[2:] == [
        "`100`", "> 0", "Images between scalar logs."]


def test_explain_shows_preset_values_their_source_defaults_and_meaning(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("model:\n  resolution: 64\ntrain:\n  lr: 3.0e-4\n  batch_size: {64: 16}\n")
    result = CliRunner().invoke(main, ["config", str(preset), "train.lr=2e-4", "train.batch_size.128=2", "--explain"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# {preset}: `model.name: twingan`")
    assert _row(result.output, "model.resolution") == [
        "`model.resolution` *", "`64`", "`256`", f"preset {preset}", "int", "> 0",
        "Final output resolution (a power of two, at least 8)."]
    assert _row(result.output, "train.lr")[1:4] == ["`0.0002`", "`0.0001`", "override 'train.lr=2e-4'"]
    assert _row(result.output, "train.batch_size")[3] == f"preset {preset}; override 'train.batch_size.128=2'"
    assert _row(result.output, "train.seed")[:4] == ["`train.seed`", "`0`", "", ""]


def test_explain_of_a_shipped_preset_by_name():
    cfg = load_config("cyclegan_smoke")
    result = CliRunner().invoke(main, ["config", "cyclegan_smoke", "--explain"])
    assert result.exit_code == 0, result.output
    row = _row(result.output, "model.resnet_blocks")
    assert row[1] == f"`{cfg.model.resnet_blocks}`" and row[3].startswith("preset ")
    assert row[6].startswith("Residual blocks of the ResNet generator")
    assert "`model.channel_base`" not in result.output
    shown = {line.split("`")[1] for line in result.output.splitlines() if line.startswith("| `")}
    assert shown == {f"{s}.{f.name}" for s in config_to_dict(cfg) for f in dataclasses.fields(getattr(cfg, s))}


def test_explain_of_an_unknown_preset_is_one_line():
    result = CliRunner().invoke(main, ["config", "nope", "--explain"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: config preset 'nope' not found")
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
