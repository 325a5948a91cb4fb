"""atomic_write: a reader sees the old file or the new one, never half; failures are one line."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from hlthz.errors import UsageError
from hlthz.files import atomic_write, ensure_parent


def test_replaces_in_one_step_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    atomic_write(target, "old")
    with target.open() as reader:  # a reader holding the old file keeps reading the old bytes
        atomic_write(target, b"new", mode=0o600)
        assert reader.read() == "old"
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(target.parent) == ["report.json"]  # no temporary left behind


def test_a_failed_write_keeps_the_old_file_and_names_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.json"
    atomic_write(target, "old")

    def disk_full(fd: int) -> None:  # a full disk cannot be had here; its error can
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(UsageError, match=r"^--report .*r\.json: cannot write \(No space left"):
        atomic_write(target, "new", what="--report")
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.json"]


def test_a_path_through_a_file_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match=r"^--html .*: cannot create its directory"):
        ensure_parent(blocker / "sub" / "r.html", what="--html")
    with pytest.raises(UsageError, match=r"^--html .*: cannot write"):
        atomic_write(blocker / "r.html", "x", what="--html")
