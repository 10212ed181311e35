"""atomic_write: a file is replaced whole or not at all, with the permissions of any new file."""

from __future__ import annotations

import os

import pytest

from restore.utils.files import WriteError, atomic_write


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "image.png"
    target.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as f:
            f.write(b"half of the new one")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["image.png"]
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["image.png"]


def test_the_written_file_has_the_permissions_of_a_new_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    with atomic_write(tmp_path / "atomic") as f:
        f.write(b"x")
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode  # not mkstemp's 0600


def test_a_folder_that_takes_no_files_is_named(tmp_path):
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'missing' / 'x.png'}: {tmp_path / 'missing'} "
                                         "does not exist"):
        with atomic_write(tmp_path / "missing" / "x.png") as f:
            f.write(b"x")
