"""A failed write leaves the previous file untouched and no temporary file behind."""

from __future__ import annotations

import os
import stat

import pytest

from twingan.atomic import atomic_path, write_text


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
