"""restore.utils.files: a file is its old version or its complete new one, with the permissions of any new
file; temporary files never stay; a folder that takes no files is named."""

from __future__ import annotations

import os

import pytest

from restore.utils.files import WriteError, atomic_path, atomic_write, atomic_write_text, remove_stale_temps


def test_a_write_cut_short_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    target = atomic_write_text(tmp_path / "round.json", '{"round": 1}')
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text('{"rou')  # half written when the kill comes
            raise KeyboardInterrupt
    assert target.read_text() == '{"round": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round.json"]


def test_temporary_files_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".round.json.ab12cd34.tmp", tmp_path / "sub" / ".masks.safetensors.x_9y8z7w.tmp"]
    kept = [tmp_path / ".gitignore", tmp_path / "notes.tmp", tmp_path / ".hidden.tmp"]
    for path in stale + kept:
        path.write_text("x")
    atomic_write_text(tmp_path / "round.json", "{}")  # a write removes its own target's leftovers
    assert not stale[0].exists() and stale[1].exists()
    assert remove_stale_temps(tmp_path) == [stale[1]]
    assert all(path.exists() for path in kept)


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


def test_atomic_path_gives_the_permissions_of_a_new_file(tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    with atomic_path(tmp_path / "atomic") as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode
