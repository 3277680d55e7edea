"""services/kernel/folders.py: which photo files a folder holds, listed or looked up by record."""

from __future__ import annotations

import os
from pathlib import Path

from darkroom.kernel.folders import Listing, scan


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"x")


def test_scan_groups_photo_files_by_basename_and_skips_the_rest(tmp_path: Path) -> None:
    _touch(tmp_path, "A.JPG", "A.arw", "B.png", ".hidden.jpg", "A.xmp", "clip.mov")
    (tmp_path / "C.jpg").mkdir()
    os.symlink(tmp_path / "B.png", tmp_path / "D.jpg")
    assert scan(tmp_path) == {"A": ["A.JPG", "A.arw"], "B": ["B.png"]}


def test_a_current_record_is_the_answer(tmp_path: Path) -> None:
    _touch(tmp_path, "A.ARW", "A.JPG")  # A.JPG was copied in by hand: manifest_check's to find
    assert Listing(tmp_path).files("A", ["A.ARW"]) == ["A.ARW"]


def test_a_stale_record_or_none_is_answered_from_the_folder(tmp_path: Path) -> None:
    _touch(tmp_path, "A.jpg", "A.ARW", "B.jpg")  # A.JPG renamed A.jpg by hand
    listing = Listing(tmp_path)
    assert listing.files("A", ["A.ARW", "A.JPG"]) == ["A.ARW", "A.jpg"]
    assert listing.files("B", []) == ["B.jpg"]
    assert listing.files("C", ["C.jpg"]) == []  # gone
    os.symlink(tmp_path / "B.jpg", tmp_path / "E.jpg")
    assert Listing(tmp_path).files("E", ["E.jpg"]) == []  # a symlink is not a photo file
