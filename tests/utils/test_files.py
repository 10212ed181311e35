"""restore.utils.files: a file is its old version or its complete new one; temporary files never stay."""

from __future__ import annotations

import pytest

from restore.utils.files import atomic_path, atomic_write_text, remove_stale_temps


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
