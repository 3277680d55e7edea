"""What the file jobs do about one photo, decided from its record and what is on disk (pure); the jobs
(jobs/commit.py, jobs/reconcile.py) move files and store events as these say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..kernel.folders import sidecars
from ..kernel.photos import derivative_source, kind_of
from ..kernel.vocabulary import DerivativeStatus
from ..projector.views import PhotoView


def removal_of(photo: PhotoView) -> list[str]:
    """The variants a commit removes: the available ones the user did not keep."""
    unkept = {
        kind
        for kind, pending in (("jpg", photo.pending_jpg), ("raw", photo.pending_raw), ("other", photo.pending_other))
        if pending
    }
    return [f for f in photo.files if kind_of(f) in unkept]


@dataclass(frozen=True)
class Removal:
    """What file_removal does to one photo."""

    names: list[str]  # the un-kept variants that go to the trash
    moving: list[str]  # they and the sidecars that travel with them
    staying: list[str]
    derivatives: DerivativeStatus | None  # missing (no source stays), pending (made again from another), or as is
    removed: bool  # no variant stays: the photo goes


def removal(photo: PhotoView, present: Callable[[str], bool], listing: list[str]) -> Removal:
    """`present`: whether a file of the photo is still in the folder; `listing`: every name in it."""
    names = [n for n in removal_of(photo) if present(n)]
    staying = [f for f in photo.files if f not in names]
    derivatives: DerivativeStatus | None = None
    if derivative_source(photo.files) in names:  # the derivatives' source goes
        derivatives = "missing" if derivative_source(staying) is None else "pending"
    return Removal(names, names + sidecars(listing, names, staying), staying, derivatives, bool(names) and not staying)


@dataclass(frozen=True)
class Availability:
    """What manifest_check does about a photo whose files on disk are not those its record has."""

    files: list[str]  # on disk
    jpg: bool
    raw: bool
    other: bool
    stale: bool  # its derivatives were made from a file that is gone, or that a new one outranks: they go
    remake: bool  # it has a source now and no derivatives from it: a new task makes them


def availability(photo: PhotoView, on_disk: list[str]) -> Availability | None:
    """None while the record agrees with the folder."""
    if sorted(on_disk) == sorted(photo.files):
        return None
    kinds = {kind_of(n) for n in on_disk}
    source = derivative_source(on_disk)
    stale = source != derivative_source(photo.files) and photo.thumbnail_status in ("generated", "pending", "failed")
    remake = source is not None and (stale or photo.thumbnail_status in ("not_supported", "missing"))
    return Availability(on_disk, "jpg" in kinds, "raw" in kinds, "other" in kinds, stale, remake)
