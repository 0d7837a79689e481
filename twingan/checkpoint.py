"""Checkpoint files: written atomically, loaded without unpickling code, pruned to the last N.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that the safe
loader (twingan.weights, torch.load with weights_only=True) can read it: a checkpoint downloaded
from the internet cannot run code on the machine that loads it. It carries a format tag so that
a foreign file (another project's .pt, a truncated copy) is refused with one clear sentence
instead of a KeyError.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from twingan.atomic import atomic_path
from twingan.errors import UserError
from twingan.weights import load_weights

FORMAT = "twingan-checkpoint"
VERSION = 1
_PATTERN = "ckpt-*.pt"
_BEST_PATTERN = "best-*.pt"


def checkpoint_name(images_seen: int) -> str:
    """Zero-padded so that names sort in training order."""
    return f"ckpt-{images_seen:012d}.pt"


def write_checkpoint(state: dict[str, Any], target: Path) -> Path:
    """One checkpoint file with its format tag, via a temporary file and a rename."""
    with atomic_path(target) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return target


def save_checkpoint(state: dict[str, Any], directory: Path, images_seen: int, keep: int) -> Path:
    """Write `state` atomically as the newest checkpoint, then drop all but the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    target = write_checkpoint(state, directory / checkpoint_name(images_seen))
    for old in sorted(directory.glob(_PATTERN))[:-keep]:
        old.unlink(missing_ok=True)
    return target


def save_best(state: dict[str, Any], directory: Path, images_seen: int) -> Path:
    """Write `state` atomically as the run's best checkpoint (best-IMAGES.pt, which the newest-N
    rule never deletes), then remove the previous best."""
    directory.mkdir(parents=True, exist_ok=True)
    target = write_checkpoint(state, directory / f"best-{images_seen:012d}.pt")
    for old in directory.glob(_BEST_PATTERN):
        if old != target:
            old.unlink(missing_ok=True)
    return target


def best_checkpoint(directory: Path) -> Path | None:
    """The run's best checkpoint by its held-out evaluations, or None."""
    found = sorted(directory.glob(_BEST_PATTERN)) if directory.is_dir() else []
    return found[-1] if found else None


def best_images(path: Path) -> int:
    """Images seen by a best checkpoint, from its name."""
    return int(path.stem.removeprefix("best-"))


def drop_best_after(directory: Path, images_seen: int) -> None:
    """Resume: a best checkpoint from later than the resume point belongs to a discarded future
    (the next evaluation at the final resolution then saves a new one)."""
    best = best_checkpoint(directory)
    if best is not None and best_images(best) > images_seen:
        best.unlink(missing_ok=True)


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint in a folder, or None."""
    found = sorted(directory.glob(_PATTERN)) if directory.is_dir() else []
    return found[-1] if found else None


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (then its newest checkpoint)."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise UserError(f"run folder {path} holds no checkpoint (ckpt-*.pt)")
        return found
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a TwinGAN checkpoint onto the CPU; refuse truncated, corrupt and foreign files."""
    path = find_checkpoint(path)
    state = load_weights(path, "checkpoint", formats=("torch",), mmap=True).content
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a TwinGAN checkpoint")
    if state.get("version") != VERSION:
        raise UserError(f"checkpoint {path} has format version {state.get('version')}; "
                        f"this TwinGAN reads version {VERSION}")
    return state


def build_and_load(build: Callable[[], nn.Module], state: dict[str, torch.Tensor]) -> nn.Module:
    """`build()` with `state` loaded, once a skeleton built on the meta device (no memory) has
    shown that the state holds exactly its tensors, shape for shape.

    A checkpoint's config decides how large the network is: a damaged or hostile one asking for
    8192 channels would otherwise allocate tens of GiB before load_state_dict found the shapes
    wrong. Raises ValueError naming the first tensor that differs."""
    with torch.device("meta"):
        expected = build().state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"tensors missing: {missing[:3] or 'none'}; unexpected: {unexpected[:3] or 'none'}")
    for key, skeleton in expected.items():
        found = getattr(state[key], "shape", None)
        if found is None or tuple(found) != tuple(skeleton.shape):
            raise ValueError(f"tensor {key} has shape {tuple(found) if found is not None else type(state[key])}, "
                             f"the config asks for {tuple(skeleton.shape)}")
    net = build()
    net.load_state_dict(state)
    return net
