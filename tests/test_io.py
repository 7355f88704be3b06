"""Atomic writes (vaebook.io): all or nothing, and files with the mode a plain open() would give."""

import os
import stat

import pytest

from vaebook.io import atomic_write_json, atomic_write_text


def test_written_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text().strip().startswith("{")


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    path = atomic_write_text(tmp_path / "page.md", "old")

    with pytest.raises(TypeError):
        atomic_write_text(path, object())  # fails inside the write, after the temporary file was made
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["page.md"]
