"""services/worker/jobs/commit.py: which variants a commit removes."""

from __future__ import annotations

from darkroom.projector.views import PhotoView
from darkroom.worker.jobs.commit import removal_of


def photo(**flags) -> PhotoView:
    return PhotoView(id="k", project_id="P", filename="DSC01", files=["DSC01.ARW", "DSC01.HEIC", "DSC01.JPG"],
                     jpg_available=True, raw_available=True, other_available=True, created_at="t", updated_at="t",
                     **({"keep_jpg": True, "keep_raw": True, "keep_other": True} | flags))


def test_a_commit_removes_every_available_variant_that_is_not_kept_and_nothing_else():
    assert removal_of(photo()) == []
    assert removal_of(photo(keep_other=False)) == ["DSC01.HEIC"]
    assert removal_of(photo(keep_jpg=False, keep_raw=False)) == ["DSC01.ARW", "DSC01.JPG"]
    assert removal_of(photo(keep_jpg=False, keep_raw=False, keep_other=False)) == ["DSC01.ARW", "DSC01.HEIC",
                                                                                   "DSC01.JPG"]
