"""services/worker/healing.py: which photos maintenance heals, and what kind a failure was."""

from __future__ import annotations

import errno
from concurrent.futures.process import BrokenProcessPool

import pytest
from PIL import Image, UnidentifiedImageError

from darkroom.projector.views import PhotoView
from darkroom.worker.healing import STALE_UPLOAD_S, Stamp, failure_kind, remake_reason, stale_uploads
from darkroom.worker.imaging import ImageTooLarge

NOW = Stamp(size=1000, mtime_ns=5_000)
MADE_AFTER = 6_000


def photo(**fields) -> PhotoView:
    base = dict(
        id="k",
        project_id="P",
        filename="DSC01",
        files=["DSC01.JPG"],
        jpg_available=True,
        keep_jpg=True,
        thumbnail_status="generated",
        preview_status="generated",
        made_from="DSC01.JPG",
        made_from_size=NOW.size,
        made_from_mtime_ns=NOW.mtime_ns,
        created_at="t",
        updated_at="t",
    )
    return PhotoView(**(base | fields))


def reason(
    p: PhotoView,
    source: str | None = "DSC01.JPG",
    stamp: Stamp | None = NOW,
    made_ns: int | None = MADE_AFTER,
    busy: bool = False,
) -> str | None:
    return remake_reason(p, source, stamp, made_ns, busy)


def test_derivatives_made_from_the_source_as_it_is_are_left_alone():
    assert reason(photo()) is None


def test_pending_with_no_job_running_is_remade_and_left_alone_while_work_is_under_way():
    stuck = photo(thumbnail_status="pending", preview_status="pending", made_from=None)
    assert reason(stuck) == "pending with no job running for it"
    assert reason(stuck, busy=True) is None
    assert reason(photo(), busy=True) is None  # busy matters only to what may be in the making


@pytest.mark.parametrize("kind", ["no_space", "out_of_memory", "timeout", "crashed", "io_error", "unknown", None])
def test_a_failure_that_may_have_passed_is_tried_again(kind):
    assert "may have passed" in reason(photo(thumbnail_status="failed", preview_status="failed", error_kind=kind))


@pytest.mark.parametrize("kind", ["unreadable", "too_large"])
def test_a_failure_of_the_file_itself_is_not_tried_again_until_the_file_changes(kind):
    failed = photo(thumbnail_status="failed", preview_status="failed", error_kind=kind)
    assert reason(failed, made_ns=None) is None
    assert reason(failed, stamp=Stamp(size=2000, mtime_ns=1_000)) == "DSC01.JPG is another file since"


def test_a_missing_derivative_file_is_remade():
    assert reason(photo(), made_ns=None) == "a derivative file is gone"


def test_derivatives_older_than_their_source_are_remade():
    assert reason(photo(made_from=None), made_ns=NOW.mtime_ns - 1) == "older than DSC01.JPG"
    assert reason(photo(made_from=None), made_ns=NOW.mtime_ns) is None


def test_derivatives_made_from_another_variant_are_remade():
    p = photo(files=["DSC01.PNG"], jpg_available=False, other_available=True, keep_other=True)
    assert reason(p, source="DSC01.PNG") == "made from DSC01.JPG, not DSC01.PNG"


def test_a_source_replaced_under_the_same_name_is_noticed_even_with_an_older_mtime():
    # As `cp -p` or rsync would leave it: another file, with a modification time before the derivatives.
    assert reason(photo(), stamp=Stamp(size=1001, mtime_ns=NOW.mtime_ns)) == "DSC01.JPG is another file since"
    assert reason(photo(), stamp=Stamp(size=NOW.size, mtime_ns=4_000)) == "DSC01.JPG is another file since"


def test_not_supported_or_missing_with_a_source_on_disk_is_made():
    for status in ("not_supported", "missing"):
        p = photo(thumbnail_status=status, preview_status=status, made_from=None)
        assert reason(p, made_ns=None) == "nothing was made from DSC01.JPG"
    settled = photo(thumbnail_status="not_supported", preview_status="not_supported", made_from="DSC01.ARW")
    assert reason(settled, source="DSC01.ARW", made_ns=None) is None  # settled for the file it was tried on


def test_without_a_source_on_disk_there_is_nothing_to_make():
    assert reason(photo(thumbnail_status="pending"), source=None, stamp=None) is None
    assert reason(photo(), stamp=None) is None  # vanished between listing and looking


def test_records_from_before_made_from_was_recorded_are_trusted_while_their_files_are_current():
    assert reason(photo(made_from=None, made_from_size=None, made_from_mtime_ns=None)) is None


@pytest.mark.parametrize(
    "exc, kind",
    [
        (ImageTooLarge("9000x9000 is over 50 megapixels"), "too_large"),
        (Image.DecompressionBombError("bomb"), "too_large"),
        (UnidentifiedImageError("cannot identify image file"), "unreadable"),
        (OSError("image file is truncated (3 bytes not processed)"), "unreadable"),
        (SyntaxError("not a TIFF file"), "unreadable"),
        (ValueError("Invalid input: Unsupported feature"), "unreadable"),
        (OSError(errno.ENOSPC, "No space left on device"), "no_space"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "no_space"),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), "out_of_memory"),
        (MemoryError(), "out_of_memory"),
        (BrokenProcessPool("A process in the process pool was terminated abruptly"), "crashed"),
        (TimeoutError(), "timeout"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), "io_error"),
        (PermissionError(errno.EACCES, "Permission denied"), "io_error"),
        (RuntimeError("something unforeseen"), "unknown"),
    ],
)
def test_failure_kinds(exc, kind):
    assert failure_kind(exc) == kind


def test_a_failure_kind_survives_the_trip_back_from_an_image_process():
    import pickle

    assert failure_kind(pickle.loads(pickle.dumps(OSError(errno.ENOSPC, "No space left on device")))) == "no_space"


def test_only_upload_part_files_untouched_for_an_hour_are_stale():
    now = 1_000_000.0
    entries = [
        (".upload-01AB.part", now - STALE_UPLOAD_S - 1),
        (".upload-01CD.part", now - 60),
        ("DSC01.JPG", now - 10 * STALE_UPLOAD_S),
        (".upload-notes.txt", now - 10 * STALE_UPLOAD_S),
        (".DS_Store", now - 10 * STALE_UPLOAD_S),
    ]
    assert stale_uploads(entries, now) == [".upload-01AB.part"]
