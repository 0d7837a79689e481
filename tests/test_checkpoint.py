"""Checkpoints: a truncated, foreign or code-carrying file is refused with one clear sentence."""

from __future__ import annotations

import pytest
import torch

from twingan.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from twingan.errors import UserError


def test_round_trip_and_run_folder_lookup(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    save_checkpoint({"weights": torch.ones(3)}, folder, images_seen=5, keep=2)
    path = save_checkpoint({"weights": torch.zeros(3)}, folder, images_seen=10, keep=2)
    assert find_checkpoint(tmp_path / "run") == path
    assert torch.equal(load_checkpoint(tmp_path / "run")["weights"], torch.zeros(3))


def test_truncated_checkpoint_is_refused(tmp_path):
    path = save_checkpoint({"weights": torch.ones(1000)}, tmp_path, images_seen=1, keep=1)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="cannot be read: truncated, corrupt"):
        load_checkpoint(path)


def test_foreign_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}}, path)
    with pytest.raises(UserError, match="is not a TwinGAN checkpoint"):
        load_checkpoint(path)


class _Payload:
    def __reduce__(self):
        return (print, ("this ran code",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "twingan-checkpoint", "version": 1, "payload": _Payload()}, path)
    with pytest.raises(UserError, match="is refused: it holds Python objects that would run code"):
        load_checkpoint(path)
    assert "this ran code" not in capsys.readouterr().out


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.mkdir(), "holds no checkpoint"),
    (lambda p: p.write_text("not a checkpoint"), "is not a PyTorch .pt/.pth file"),
])
def test_missing_or_bad_paths(tmp_path, make, message):
    target = tmp_path / "ck"
    make(target)
    with pytest.raises(UserError, match=message):
        load_checkpoint(target)
