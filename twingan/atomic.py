"""Atomic file writes: a crash or Ctrl-C never leaves a half-written checkpoint, index or image.

Also the two other things every writer needs: `check_writable`, to refuse an output place before
any long work starts, and one-line messages for a write that fails anyway (a full disk, a
read-only folder), naming the file the user asked for rather than a temporary name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from twingan.errors import UserError, describe_os_error

_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)-[a-z0-9_]{8}\.tmp$")
"""Our temporary names: .<target name>.<writer's pid>-<mkstemp's 8 characters>.tmp"""
_OLD_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
"""The names of TwinGAN 0.x before the pid was added: cleaned once they are an hour old."""
OLD_TEMP_AGE_S = 3600
_cleaned: set[Path] = set()
LOW_SPACE = 1 << 20
"""Free bytes under which a failed write is put down to a full disk."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename.

    The temporary file lives in the target's folder so that the final os.replace stays on one
    file system (and is therefore atomic). On any exception the temporary file is removed and
    the previous `target`, if any, is left untouched. mkstemp makes the file private (0600);
    it gets the permissions a plain open() would have given it before it is renamed into place.
    The temporary name carries the writer's process id, so that the first write of a later
    process into the same folder removes what a killed writer left behind. A write that fails
    for lack of space or permission is a UserError naming `target`.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {describe_os_error(exc, with_path=False)}") from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {describe_os_error(exc, with_path=False)}") from None
    except RuntimeError as exc:  # torch.save reports a failed write from C++ ("file write failed")
        if "write" not in str(exc) or _free_bytes(target.parent) >= LOW_SPACE:
            raise
        raise UserError(f"cannot write {target}: the disk is full") from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files that killed TwinGAN writers left in `folder` (once per process
    and folder): ours by name, and only when the process that made them is gone."""
    if folder in _cleaned:
        return
    _cleaned.add(folder)
    now = time.time()
    for candidate in folder.glob(".*.tmp"):
        found = _TEMP.match(candidate.name)
        try:
            stale = (not _process_alive(int(found["pid"])) if found else
                     _OLD_TEMP.match(candidate.name) is not None
                     and now - candidate.stat().st_mtime > OLD_TEMP_AGE_S)
            if stale:
                candidate.unlink()
        except OSError:  # gone already, or not ours to remove: the write itself goes on
            continue


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(target: str | os.PathLike[str], what: str, folder: bool = False) -> None:
    """Refuse, before any long work, an output that could not be written: `target` is a file
    (`folder=False`) or a folder to write into. Nothing is created: the nearest existing folder
    on the way gets a one-byte test file, which also catches a full disk."""
    target = Path(target)
    if folder and target.exists() and not target.is_dir():
        raise UserError(f"{what} {target} is a file; give a folder")
    if not folder and target.is_dir():
        raise UserError(f"{what} {target} is a folder; give a file name")
    place = target if folder else target.parent
    existing = next((p for p in (place, *place.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"cannot write {what} {target}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"\0")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise UserError(f"cannot write {what} {target}: {describe_os_error(exc, with_path=False)} "
                        f"(in {existing})") from None
    if _free_bytes(existing) < LOW_SPACE:
        raise UserError(f"cannot write {what} {target}: the disk is full (in {existing})")


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
