"""The converted weights file on disk: written atomically, read without ever running code.

A PyTorch `.pt` file is a pickle, which can call any Python function it names when loaded;
safetensors holds tensors and a JSON header only. `illust2vec convert` writes safetensors, so
that is all `read_safetensors` accepts: a pickle, whatever its name, is refused by its bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from illust2vec.errors import Illust2VecError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is flushed to disk and replaces `target`
    in one rename, so a crash or Ctrl-C never leaves a half-written file. On any exception the
    temporary file is removed and a previous `target` is left as it was; an OSError propagates."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_safetensors(path: Path) -> bool:
    """Whether the bytes (not the name) start like safetensors: a header length, then JSON."""
    with path.open("rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 0


def read_safetensors(path: str | os.PathLike[str], what: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(header metadata, tensors) of a safetensors file, on the CPU; `what` names it in messages.
    Missing, foreign (a pickle included: nothing of it is run) and truncated files are an Illust2VecError."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise Illust2VecError(f"{what} {path} does not exist")
    if not path.is_file():
        raise Illust2VecError(f"{what} {path} is not a regular file")
    try:
        safetensors = is_safetensors(path)
    except OSError as exc:
        raise Illust2VecError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    if not safetensors:
        raise Illust2VecError(f"{what} {path} is not a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return dict(metadata), load_file(str(path))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise Illust2VecError(f"{what} {path} cannot be read: truncated or corrupt safetensors file "
                              f"({str(exc).splitlines()[0][:160]})") from None
