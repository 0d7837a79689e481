"""The safe loader: a weights file that would run code is refused, in every format and by every reader."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from twingan.checkpoint import load_checkpoint
from twingan.errors import UserError
from twingan.evaluation.metrics import InceptionFeatures
from twingan.weights import code_loading_refused, load_weights


class Payload:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_code_carrying(path: Path, fmt: str, marker: Path) -> Path:
    """A file in `fmt` whose loading with plain pickle would create `marker`."""
    content = {"format": "twingan-checkpoint", "version": 1, "weight": torch.ones(2), "payload": Payload(marker)}
    if fmt == "torch-zip":
        torch.save(content, path)
    elif fmt == "torch-legacy":
        torch.save(content, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as handle:
            pickle.dump(content, handle)
    return path


FORMATS = ["torch-zip", "torch-legacy", "plain-pickle"]


@pytest.fixture
def marker(tmp_path) -> Path:
    found = tmp_path / "PWNED"
    yield found
    assert not found.exists(), "loading a weights file ran its code"


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_loader_refuses_code_in_every_format(tmp_path, marker, fmt):
    evil = write_code_carrying(tmp_path / "evil.pt", fmt, marker)
    with pytest.raises(UserError, match="is refused: it holds Python objects that would run code"):
        load_weights(evil, "weights")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("reader", ["checkpoint", "inception", "illust2vec"])
def test_every_reader_refuses_code_with_one_sentence(tmp_path, marker, fmt, reader):
    evil = write_code_carrying(tmp_path / "evil.safetensors", fmt, marker)
    if reader == "checkpoint":
        with pytest.raises(UserError, match="checkpoint .* is refused"):
            load_checkpoint(evil)
    elif reader == "inception":
        with pytest.raises(UserError, match="Inception weights .* is refused"):
            InceptionFeatures(evil)
    else:
        from illust2vec import Illust2Vec
        from illust2vec.errors import Illust2VecError

        with pytest.raises(Illust2VecError, match="illust2vec weights .* is not a .safetensors file"):
            Illust2Vec.load(evil)


def test_the_inception_library_loader_is_forced_safe(tmp_path, marker):
    """torch-fidelity calls torch.load(weights_only=False) itself; inside the guard that is ignored."""
    evil = write_code_carrying(tmp_path / "evil.pt", "torch-zip", marker)
    before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    with code_loading_refused(), pytest.raises(pickle.UnpicklingError):
        torch.load(evil, weights_only=False)
    assert os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD") == before


@pytest.mark.parametrize("how", ["option", "environment"])
def test_eval_stops_on_refused_inception_weights_instead_of_leaving_kid_out(tmp_path, marker, how, monkeypatch):
    from conftest import write_image_folder

    from twingan.cli import main

    write_image_folder(tmp_path / "a", 2, size=16)
    write_image_folder(tmp_path / "b", 2, size=16, seed=9)
    evil = write_code_carrying(tmp_path / "evil.pth", "torch-zip", marker)
    args = ["eval", "--identity", "--size", "16", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
            "--no-progress"]
    monkeypatch.delenv("TWINGAN_INCEPTION_WEIGHTS", raising=False)
    if how == "option":
        result = CliRunner().invoke(main, [*args, "--inception-weights", str(evil)])
    else:
        result = CliRunner().invoke(main, args, env={"TWINGAN_INCEPTION_WEIGHTS": str(evil)})
    assert result.exit_code == 1, result.output
    assert "is refused" in result.output and "Traceback" not in result.output


def test_plain_tensors_and_safetensors_still_load(tmp_path):
    from safetensors.torch import save_file

    torch.save({"w": torch.arange(3)}, tmp_path / "ok.pt")
    save_file({"w": torch.arange(3)}, str(tmp_path / "ok.safetensors"), metadata={"k": "v"})
    assert torch.equal(load_weights(tmp_path / "ok.pt", "weights").content["w"], torch.arange(3))
    loaded = load_weights(tmp_path / "ok.safetensors", "weights")
    assert loaded.format == "safetensors" and loaded.metadata == {"k": "v"}
    with pytest.raises(UserError, match="is not a PyTorch .pt/.pth file"):
        load_weights(tmp_path / "ok.safetensors", "checkpoint", formats=("torch",))
