"""The one way TwinGAN reads a weights file: nothing in the file can ever run code.

A PyTorch `.pt`/`.pth` file is a pickle, and unpickling can call any Python function the file
names (`os.system` included). Every weights file this project reads (checkpoints, the Inception
network behind KID/FID/IS, illust2vec's converted tag model) therefore goes through `load_weights`:
PyTorch files with `torch.load(weights_only=True)`, which only rebuilds tensors, numbers,
strings and containers, and safetensors files, which hold no code at all. Anything else is
refused with one sentence that says why.

Libraries that load a file themselves (torch-fidelity's Inception loader passes
`weights_only=False`) run inside `code_loading_refused()`, which makes PyTorch ignore that
argument. The `twingan` command sets the same switch for its whole process, so a library path
nobody has found yet cannot unpickle code either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from twingan.errors import UserError

FORCE_SAFE = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
FORCE_UNSAFE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
Format = Literal["torch", "safetensors"]
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80
_CODE = re.compile(r"GLOBAL ([\w.]+)")


@dataclass(frozen=True)
class Weights:
    """What a weights file holds: the loaded object and, for safetensors, its header metadata."""

    content: Any
    format: Format
    metadata: dict[str, str] = field(default_factory=dict)


def file_format(path: Path) -> Format | None:
    """Which format the bytes are (not the name): a PyTorch zip or legacy pickle, or safetensors."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL]):
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 0:
        return "safetensors"
    return None


def load_weights(path: str | os.PathLike[str], what: str, formats: tuple[Format, ...] = ("torch", "safetensors"),
                 mmap: bool = False) -> Weights:
    """Read `path` onto the CPU without running anything it carries; `what` names it in messages
    ("checkpoint", "Inception weights"). Missing, foreign, truncated and code-carrying files are a
    UserError. `mmap` maps a PyTorch zip file's tensors instead of reading them (large checkpoints)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if not path.is_file():
        raise UserError(f"{what} {path} is not a regular file")
    try:
        kind = file_format(path)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    names = " or ".join({"torch": "a PyTorch .pt/.pth file", "safetensors": "a .safetensors file"}[f] for f in formats)
    if kind not in formats:
        raise UserError(f"{what} {path} is not {names}")
    if kind == "safetensors":
        return _load_safetensors(path, what)
    # torch.load hands a *.safetensors name to safetensors whatever the bytes are: give it an open
    # file then. mmap needs the name, and a zip file (PyTorch's current format).
    use_mmap = mmap and not path.name.endswith(".safetensors") and zipfile.is_zipfile(path)
    try:
        with (contextlib.nullcontext(path) if use_mmap else path.open("rb")) as source, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pickle protocol 4": the refusal below says what matters
            content = torch.load(source, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        raise UserError(_refusal(path, what, str(exc))) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, struct.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{what} {path} cannot be read: truncated, corrupt or not {names} ({reason[:160]})") from None
    return Weights(content, "torch")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks: what identifies a checkpoint or a
    picture in an index, and what a bundled model is checked against."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refusal(path: Path, what: str, message: str) -> str:
    """One sentence for a pickle that holds more than tensors and plain values."""
    found = _CODE.search(message)
    calls = f" (it calls {found.group(1)})" if found else ""
    return (f"{what} {path} is refused: it holds Python objects that would run code when loaded{calls}; "
            f"nothing from it was run. Only files of plain tensors and numbers are read")


def _load_safetensors(path: Path, what: str) -> Weights:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return Weights(load_file(str(path)), "safetensors", dict(metadata))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise UserError(f"{what} {path} cannot be read: truncated or corrupt safetensors file "
                        f"({str(exc).splitlines()[0][:160]})") from None


@contextlib.contextmanager
def code_loading_refused() -> Iterator[None]:
    """Within the block, every torch.load (a library's included) acts as weights_only=True,
    whatever it asks for: for third-party loaders that pass weights_only=False."""
    saved = {name: os.environ.get(name) for name in (FORCE_SAFE, FORCE_UNSAFE)}
    refuse_code_loading()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def refuse_code_loading() -> None:
    """Make every later torch.load of this process (and its children) weights_only=True."""
    os.environ.pop(FORCE_UNSAFE, None)
    os.environ[FORCE_SAFE] = "1"
