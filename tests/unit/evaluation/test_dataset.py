"""The labelled folder: layout, natural order, split, UserIds, clear errors."""

from __future__ import annotations

import pytest

from enroll_local.evaluation.dataset import DatasetError, load_folder, natural_key, split, user_ids


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_identities_and_photos_in_natural_order(tmp_path):
    for name in ("10.png", "2.png", "1.png", ".DS_Store"):
        _touch(tmp_path / "bob" / name)
    _touch(tmp_path / "alice" / "a.jpg")
    _touch(tmp_path / "MANIFEST.tsv")  # files directly in the folder are ignored
    (tmp_path / "empty").mkdir()
    dataset = load_folder(tmp_path)
    assert list(dataset.identities) == ["alice", "bob"]
    assert [p.label for p in dataset.identities["bob"]] == ["bob/1.png", "bob/2.png", "bob/10.png"]
    assert sorted(["x10", "x9", "X1"], key=natural_key) == ["X1", "x9", "x10"]


def test_split_enrolls_the_first_k_and_skips_small_identities(tmp_path):
    for n in range(1, 5):
        _touch(tmp_path / "bob" / f"{n}.jpg")
    for n in range(1, 3):
        _touch(tmp_path / "carol" / f"{n}.jpg")
    chosen = split(load_folder(tmp_path), 2)
    assert [p.label for p in chosen.enrollment["bob"]] == ["bob/1.jpg", "bob/2.jpg"]
    assert [p.label for p in chosen.genuine] == ["bob/3.jpg", "bob/4.jpg"]
    assert list(chosen.skipped) == ["carol"]  # exactly K photos: nothing left to search
    with pytest.raises(DatasetError, match="at least 1"):
        split(load_folder(tmp_path), 0)


def test_missing_or_flat_folders_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        load_folder(tmp_path / "nope")
    _touch(tmp_path / "photo.jpg")
    with pytest.raises(DatasetError, match=r"no <identity>/<photo> files"):
        load_folder(tmp_path, "--distractors")


def test_user_ids_are_valid_and_distinct():
    ids = user_ids(["George W Bush", "George_W_Bush", "ok-name.1", "é"])
    assert ids == {
        "George W Bush": "George_W_Bush",
        "George_W_Bush": "George_W_Bush-2",
        "ok-name.1": "ok-name.1",
        "é": "_",
    }
