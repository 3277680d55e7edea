"""services/worker/plans.py: what file_removal and manifest_check do about one photo."""

from __future__ import annotations

from darkroom.projector.views import PhotoView
from darkroom.worker.plans import Availability, Removal, availability, removal, removal_of

FILES = ["DSC01.ARW", "DSC01.HEIC", "DSC01.JPG"]


def photo(files: list[str] = FILES, thumbnail_status: str = "generated", **flags) -> PhotoView:
    kinds = {name.rpartition(".")[2] for name in files}
    return PhotoView(
        id="k",
        project_id="P",
        filename="DSC01",
        files=files,
        jpg_available="JPG" in kinds,
        raw_available="ARW" in kinds,
        other_available="HEIC" in kinds,
        created_at="t",
        updated_at="t",
        thumbnail_status=thumbnail_status,
        **({"keep_jpg": True, "keep_raw": True, "keep_other": True} | flags),
    )


def everything(name: str) -> bool:
    return True


def test_a_commit_removes_every_available_variant_that_is_not_kept_and_nothing_else():
    assert removal_of(photo()) == []
    assert removal_of(photo(keep_other=False)) == ["DSC01.HEIC"]
    assert removal_of(photo(keep_jpg=False, keep_raw=False)) == ["DSC01.ARW", "DSC01.JPG"]
    assert removal_of(photo(keep_jpg=False, keep_raw=False, keep_other=False)) == FILES


def test_a_raw_that_goes_takes_its_sidecars_and_leaves_the_derivatives_alone():
    listing = [*FILES, "DSC01.ARW.xmp", "DSC01.xmp", "DSC01.JPG.xmp", "notes.txt"]
    plan = removal(photo(keep_raw=False), everything, listing)
    assert plan == Removal(
        names=["DSC01.ARW"],
        moving=["DSC01.ARW", "DSC01.ARW.xmp", "DSC01.xmp"],
        staying=["DSC01.HEIC", "DSC01.JPG"],
        derivatives=None,
        removed=False,
    )


def test_the_source_that_goes_has_the_derivatives_made_again_from_the_variant_that_stays():
    plan = removal(photo(keep_jpg=False), everything, FILES)
    assert plan.names == ["DSC01.JPG"] and plan.derivatives == "pending" and not plan.removed


def test_the_last_variant_that_goes_leaves_the_derivatives_missing_and_the_photo_removed():
    plan = removal(photo(["DSC01.JPG"], keep_jpg=False), everything, ["DSC01.JPG", "DSC01.xmp"])
    assert plan == Removal(["DSC01.JPG"], ["DSC01.JPG", "DSC01.xmp"], [], "missing", True)


def test_a_file_gone_already_is_not_moved_and_changes_nothing():
    plan = removal(photo(keep_jpg=False), lambda name: name != "DSC01.JPG", FILES)
    assert plan == Removal([], [], FILES, None, False)


def test_a_record_that_agrees_with_the_folder_needs_nothing():
    assert availability(photo(), list(reversed(FILES))) is None


def test_a_jpg_copied_in_beside_a_raw_outranks_the_raw_preview_the_derivatives_came_from():
    change = availability(photo(["DSC01.ARW"]), ["DSC01.ARW", "DSC01.JPG"])
    assert change == Availability(["DSC01.ARW", "DSC01.JPG"], jpg=True, raw=True, other=False, stale=True, remake=True)


def test_a_source_deleted_by_hand_leaves_derivatives_made_from_nothing_there():
    change = availability(photo(["DSC01.JPG"]), [])
    assert change == Availability([], jpg=False, raw=False, other=False, stale=True, remake=False)


def test_a_photo_that_had_no_derivatives_gets_them_once_a_source_appears():
    for status in ("not_supported", "missing"):
        change = availability(photo(["DSC01.ARW"], thumbnail_status=status), ["DSC01.ARW", "DSC01.HEIC"])
        assert change is not None and not change.stale and change.remake, status


def test_another_variant_alone_changes_availability_but_not_the_derivatives():
    change = availability(photo(["DSC01.JPG"]), ["DSC01.ARW", "DSC01.JPG"])
    assert change == Availability(
        ["DSC01.ARW", "DSC01.JPG"], jpg=True, raw=True, other=False, stale=False, remake=False
    )
