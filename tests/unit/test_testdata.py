"""The suite owns its photos: a plain clone, with nothing beside it, passes the test command."""

from __future__ import annotations

import subprocess

from tests.conftest import PHOTOS, REPO


def test_the_photos_the_tests_read_live_in_the_repo_with_their_licence_notice():
    assert PHOTOS.resolve().is_relative_to(REPO.resolve()), f"{PHOTOS} is outside the repository"
    photos = sorted(PHOTOS.rglob("*.jpg"))
    assert len(photos) >= 22, photos
    notice = (PHOTOS / "README.md").read_text()
    assert "CC BY-SA" in notice and "exif-samples" in notice


def test_the_photos_are_committed_not_only_on_this_disk():
    listed = subprocess.run(
        ["git", "ls-files", str(PHOTOS.relative_to(REPO))], cwd=REPO, capture_output=True, text=True
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked archive): nothing more to check
        return
    tracked = {line for line in listed.stdout.splitlines() if line.endswith(".jpg")}
    assert len(tracked) == len(list(PHOTOS.rglob("*.jpg"))), "photos under tests/data are not all committed"
