"""kernel.pagecache: an original whose derivatives are made leaves the page cache, and nothing fails for it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from darkroom.kernel.pagecache import let_go
from tests.residency import cached_pages

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")


def test_a_file_let_go_is_on_the_disk_and_out_of_the_cache(tmp_path: Path) -> None:
    original = tmp_path / "IMG_0001.jpg"
    original.write_bytes(os.urandom(2 << 20))
    assert cached_pages(original) == 512  # as a file copied in by hand may be: written, not yet on the disk
    let_go(original)
    assert cached_pages(original) == 0
    assert original.stat().st_size == 2 << 20  # the file itself is untouched


def test_a_file_gone_meanwhile_is_no_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        let_go(tmp_path / "trashed.jpg")
    assert not caplog.records


def test_a_file_that_cannot_be_synced_is_logged_as_an_error_and_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        let_go(Path("/dev/null"))  # fdatasync(2) refuses it (EINVAL), as a failing disk would with EIO
    assert [(r.levelname, "may not be on the disk" in r.getMessage()) for r in caplog.records] == [("ERROR", True)]
