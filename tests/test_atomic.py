"""A failed write leaves the previous file untouched and no temporary file behind, says why in one
line, and the next write cleans what a killed writer left."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from twingan.atomic import atomic_path, check_writable, write_text
from twingan.errors import UserError


def test_success_replaces_target(tmp_path):
    target = tmp_path / "sub" / "index.bin"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["index.bin"]


def test_failure_keeps_previous_content_and_cleans_up(tmp_path):
    target = tmp_path / "checkpoint.pt"
    write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_written_file_gets_the_umask_permissions_not_mkstemps_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


def test_the_next_write_removes_temporaries_of_killed_writers_only(tmp_path, monkeypatch):
    from twingan import atomic

    monkeypatch.setattr(atomic, "_cleaned", set())
    dead = tmp_path / ".ckpt-000000000012.pt.999999999-abcdefgh.tmp"  # no such process
    alive = tmp_path / f".b-1234.faiss.{os.getpid()}-abcdefgh.tmp"  # this process: a write in progress
    old = tmp_path / ".b-0f3a.faiss.k2j4l5m6.tmp"  # before pids were in the name, an hour old
    users = tmp_path / ".notes.tmp"  # not our naming
    for path in (dead, alive, old, users):
        path.write_bytes(b"x" * 100)
    os.utime(old, (0, 0))
    write_text(tmp_path / "ckpt-000000000024.pt", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, users.name, "ckpt-000000000024.pt"])


@pytest.mark.parametrize("error, reason", [
    (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
])
def test_a_failed_write_is_one_line_naming_the_target(tmp_path, error, reason):
    target = tmp_path / "report.json"
    write_text(target, "good")
    with pytest.raises(UserError, match=f"^cannot write {target}: {reason}$"), atomic_path(target):
        raise error
    assert target.read_text() == "good" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_torch_saves_c_plus_plus_write_error_on_a_full_disk_says_so(tmp_path, monkeypatch):
    from twingan import atomic

    monkeypatch.setattr(atomic, "_free_bytes", lambda folder: 0)
    with pytest.raises(UserError, match="ckpt.pt: the disk is full"), atomic_path(tmp_path / "ckpt.pt"):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")


@pytest.mark.parametrize("make, folder, message", [
    (lambda d: (d / "f").write_text("x") and d / "f" / "sub" / "out.json", False, "f is a file, not a folder"),
    (lambda d: (d / "f").write_text("x") and d / "f", True, "is a file; give a folder"),
    (lambda d: (d / "dir").mkdir() or d / "dir", False, "is a folder; give a file name"),
])
def test_check_writable_refuses_without_creating_anything(tmp_path, make, folder, message):
    target = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UserError, match=message):
        check_writable(target, "output", folder)
    assert sorted(tmp_path.rglob("*")) == before
    check_writable(tmp_path / "new" / "deeper", "output", folder=True)
    assert not (tmp_path / "new").exists()
