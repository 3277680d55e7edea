"""Read-model rows as the API and SSE show them: defined once, used by projector, API and UI.
Rows are plain values that never refer back to anything, so the cyclic collector skips them (gc=False):
a rebuild keeps hundreds of thousands in memory."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from ..kernel.clock import parse_iso
from ..kernel.events import Step


class TaskView(msgspec.Struct, kw_only=True, gc=False):
    id: str
    type: str
    label: str
    user_relevant: bool
    source: str
    project_id: str | None
    folder: str | None
    status: str
    step_index: int
    steps: list[Step]
    cancel_requested: bool = False
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    updated_at: str
    maintenance: bool = False
    retry_of: str | None = None  # the failed or canceled task this one runs again
    start_step: int = 0  # the first step it runs
    retried_by: str | None = None  # its newest retry


class JobView(msgspec.Struct, kw_only=True, gc=False):
    id: str
    task_id: str
    task_type: str
    source: str
    type: str
    project_id: str | None
    folder: str | None
    priority: int
    lane: str
    status: str
    step_index: int
    attempts: int = 0
    progress_done: int = 0
    progress_total: int = 0
    error: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str
    maintenance: bool = False


class DeadLetter(msgspec.Struct):
    seq: int
    subject: str
    reason: str
    at: str


class DeadLetterRemoved(msgspec.Struct):
    """SSE `dead_letter_removed`: no longer listed, `discarded` or `applied`."""

    seq: int
    how: str


class LaneRow(msgspec.Struct, kw_only=True, gc=False):
    """A lane's state as its newest lane.paused or lane.resumed left it (SSE `lane_update`)."""

    lane: str
    paused: bool = False
    updated_at: str | None = None


class ProjectRow(msgspec.Struct, kw_only=True, gc=False):
    id: str
    folder: str
    name: str
    created_at: str
    updated_at: str
    manifest_version: int = 0
    photo_count: int = 0
    pending_photos: int = 0
    pending_jpg: int = 0
    pending_raw: int = 0
    pending_other: int = 0
    deleted_at: str | None = None  # in DIR/trash/, restorable until the trash TTL from then

    @property
    def pending(self) -> Pending:
        return Pending(self.pending_photos, self.pending_jpg, self.pending_raw, self.pending_other)


class Pending(msgspec.Struct):
    photos: int
    jpg: int
    raw: int
    other: int = 0


class ProjectView(msgspec.Struct, kw_only=True):
    project_id: str
    folder: str
    name: str
    created_at: str
    updated_at: str
    photo_count: int
    pending: Pending

    @classmethod
    def of(cls, row: ProjectRow) -> ProjectView:
        return cls(
            project_id=row.id,
            folder=row.folder,
            name=row.name,
            created_at=row.created_at,
            updated_at=row.updated_at,
            photo_count=row.photo_count,
            pending=row.pending,
        )


class PhotoView(msgspec.Struct, kw_only=True, gc=False):
    id: str  # the photo key (CONTRACT §4)
    project_id: str
    filename: str
    files: list[str] = []
    jpg_available: bool = False
    raw_available: bool = False
    other_available: bool = False
    keep_jpg: bool = False
    keep_raw: bool = False
    keep_other: bool = False
    thumbnail_status: str = "pending"
    preview_status: str = "pending"
    taken_at: str | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    error: str | None = None
    error_kind: str | None = None
    made_from: str | None = None  # see PhotoDerivativesUpdated
    made_from_size: int | None = None
    made_from_mtime_ns: int | None = None
    moving_to: str | None = None  # the project a move that has not ended takes it to
    created_at: str
    updated_at: str

    @property
    def pending_jpg(self) -> bool:
        return self.jpg_available and not self.keep_jpg

    @property
    def pending_raw(self) -> bool:
        return self.raw_available and not self.keep_raw

    @property
    def pending_other(self) -> bool:
        return self.other_available and not self.keep_other

    @property
    def has_pending(self) -> bool:
        return self.pending_jpg or self.pending_raw or self.pending_other


class Item(msgspec.Struct):
    """SSE `item`: the whole photo as GET returns it."""

    project_id: str
    folder: str
    photo: PhotoView


class ItemRemoved(msgspec.Struct):
    project_id: str
    folder: str
    filename: str


class PendingChanges(msgspec.Struct):
    project_id: str
    folder: str
    pending: Pending


class ProjectChange(msgspec.Struct):
    """SSE `project_renamed`, `project_deleted` and `project_restored`: where the project is now."""

    project_id: str
    folder: str
    name: str
    previous_folder: str | None = None


class DeletedProject(msgspec.Struct):
    """`GET /api/trash/projects`: a deleted project, restorable until `expires_at`."""

    project_id: str
    folder: str
    name: str
    photo_count: int
    deleted_at: str
    expires_at: str

    @classmethod
    def of(cls, row: ProjectRow, ttl_s: float) -> DeletedProject:
        deleted_at = row.deleted_at or ""
        expires = parse_iso(deleted_at) + timedelta(seconds=ttl_s)
        return cls(
            row.id,
            row.folder,
            row.name,
            row.photo_count,
            deleted_at,
            expires.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )


class RefusedFolder(msgspec.Struct, kw_only=True, gc=False):
    """A folder under DIR/projects/ that maintenance could not adopt, and why."""

    folder: str
    reason: str
    at: str


class TrashRow(msgspec.Struct, kw_only=True, gc=False):
    id: str  # <project_id>/<trash name>
    project_id: str
    trash_name: str
    name: str  # the original file name
    filename: str  # the photo's basename
    trashed_at: str
