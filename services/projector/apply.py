"""How each event changes the read models (pure): rows in, rows and SSE messages out."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Iterable

import msgspec

from ..kernel.definitions import is_maintenance
from ..kernel.events import (
    AttemptEnded,
    Event,
    FolderRefused,
    JobCanceled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgress,
    JobRequested,
    JobRetrying,
    JobStarted,
    LaneEvent,
    LanePaused,
    PhotoAvailabilityChanged,
    PhotoDerivativesUpdated,
    PhotoEvent,
    PhotoFileAdded,
    PhotoFileMoved,
    PhotoFilesRestored,
    PhotoFilesTrashed,
    PhotoKeepChanged,
    PhotoMetadata,
    PhotoMetadataExtracted,
    PhotoMoved,
    PhotoMoveStarted,
    PhotoRemoved,
    PhotoSidecarAdded,
    ProjectCreated,
    ProjectDeleted,
    ProjectManifestWritten,
    ProjectPurged,
    ProjectRenamed,
    ProjectRestored,
    ProjectTrashPurged,
    TaskCanceled,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskRequested,
    TaskStarted,
    type_name,
)
from ..kernel.photos import kind_of, photo_key
from ..kernel.vocabulary import TERMINAL
from .views import (
    Item,
    ItemRemoved,
    JobView,
    LaneRow,
    PendingChanges,
    PhotoView,
    ProjectChange,
    ProjectRow,
    RefusedFolder,
    TaskView,
    TrashRow,
)

replace = msgspec.structs.replace


@dataclass(slots=True)
class Message:
    """One SSE message caused by an event; `k` orders several caused by the same event."""

    event: str
    data: msgspec.Struct
    project_id: str | None
    folder: str | None
    maintenance: bool


@dataclass
class Rows:
    """The rows a batch touches, loaded once and written (or deleted) once; `relay`: whether the
    SSE messages are wanted (a rebuild writes none: building them is a large share of its apply)."""

    relay: bool = True
    tasks: dict[str, TaskView | None] = field(default_factory=dict)
    jobs: dict[str, JobView | None] = field(default_factory=dict)
    projects: dict[str, ProjectRow | None] = field(default_factory=dict)
    photos: dict[str, PhotoView | None] = field(default_factory=dict)
    dirty_tasks: set[str] = field(default_factory=set)
    dirty_jobs: set[str] = field(default_factory=set)
    dirty_projects: set[str] = field(default_factory=set)
    dirty_photos: set[str] = field(default_factory=set)
    trash: dict[str, TrashRow | None] = field(default_factory=dict)  # written, never read: no loading
    lanes: dict[str, LaneRow] = field(default_factory=dict)  # written, never read: a lane's newest event is its state
    refused: dict[str, RefusedFolder | None] = field(default_factory=dict)  # by folder; written, never read
    purged: list[str] = field(default_factory=list)  # projects whose photos and trash rows go, all at once

    def put_task(self, task: TaskView) -> TaskView:
        self.tasks[task.id] = task
        self.dirty_tasks.add(task.id)
        return task

    def put_job(self, job: JobView) -> JobView:
        self.jobs[job.id] = job
        self.dirty_jobs.add(job.id)
        return job

    def put_project(self, project: ProjectRow) -> ProjectRow:
        self.projects[project.id] = project
        self.dirty_projects.add(project.id)
        return project

    def drop_project(self, project_id: str) -> None:
        """The project and everything of it leave the read model (its photos' keys are not known here)."""
        self.projects[project_id] = None
        self.dirty_projects.add(project_id)
        self.purged.append(project_id)
        for key in [k for k, p in self.photos.items() if p is not None and p.project_id == project_id]:
            self.photos[key] = None  # rows a rebuild keeps in memory go with it

    def put_photo(self, key: str, photo: PhotoView | None) -> None:
        self.photos[key] = photo
        self.dirty_photos.add(key)

    def trashed(self, project_id: str, trash_name: str, name: str, filename: str, at: str) -> None:
        key = f"{project_id}/{trash_name}"
        self.trash[key] = TrashRow(
            id=key, project_id=project_id, trash_name=trash_name, name=name, filename=filename, trashed_at=at
        )

    def untrashed(self, project_id: str, trash_name: str) -> None:
        self.trash[f"{project_id}/{trash_name}"] = None


@dataclass
class Needs:
    tasks: set[str] = field(default_factory=set)
    jobs: set[str] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)
    photos: set[str] = field(default_factory=set)


def needs(event: Event, into: Needs) -> None:
    """Which rows applying this event reads."""
    if event.task_id:
        into.tasks.add(event.task_id)
    fold = fold_of(type(event))
    if fold is _apply_task and type(event) is TaskRequested and event.retry_of:
        into.tasks.add(event.retry_of)
    if fold is _apply_job and event.job_id:
        into.jobs.add(event.job_id)
    if event.project_id:
        into.projects.add(event.project_id)
        if fold is _apply_photo and isinstance(event, PhotoEvent):
            into.photos.add(photo_key(event.project_id, event.filename))
    if type(event) is PhotoMoved:  # the photo leaves the project it came from
        into.projects.add(event.from_project_id)
        into.photos.add(photo_key(event.from_project_id, event.filename))


def apply(rows: Rows, event: Event) -> list[Message]:
    return fold_of(type(event))(rows, event)


def task_after(event: Event, task: TaskView | None = None) -> TaskView:
    """The task as `event` leaves it: what the API answers before the read model has applied it."""
    rows = Rows(tasks={task.id: task} if task is not None else {})
    apply(rows, event)
    after = rows.tasks.get(event.task_id or "")
    if after is None:
        raise ValueError(f"{event.type} leaves no task")
    return after


def project_after(events: Iterable[Event]) -> ProjectRow:
    """The project as its first events make it, without the read model."""
    rows = Rows()
    project_id = ""
    for event in events:
        apply(rows, event)
        project_id = event.project_id or project_id
    after = rows.projects.get(project_id)
    if after is None:
        raise ValueError("these events make no project")
    return after


@cache
def fold_of(cls: type[Event]) -> Callable[[Rows, Any], list[Message]]:
    """How an event type changes the rows (which aggregate): by class, once (isinstance on a Struct is dear
    on this path); `apply` in one call."""
    if issubclass(cls, JobEvent):
        return _apply_job
    if issubclass(cls, PhotoEvent):
        return _apply_photo
    if type_name(cls).startswith("task."):
        return _apply_task
    if type_name(cls).startswith("project."):
        return _apply_project
    if issubclass(cls, LaneEvent):
        return _apply_lane
    if cls is FolderRefused:
        return _apply_folder
    return lambda rows, event: []


def _apply_lane(rows: Rows, event: LaneEvent) -> list[Message]:
    lane = rows.lanes[event.lane] = LaneRow(lane=event.lane, paused=isinstance(event, LanePaused), updated_at=event.at)
    return [Message("lane_update", lane, None, None, False)] if rows.relay else []


def _apply_project(rows: Rows, event: Event) -> list[Message]:
    project = rows.projects.get(event.project_id or "")
    if isinstance(event, ProjectCreated):
        if project is None:
            rows.put_project(
                ProjectRow(
                    id=event.project_id or "",
                    folder=event.folder,
                    name=event.name,
                    created_at=event.at,
                    updated_at=event.at,
                )
            )
            rows.refused[event.folder] = None  # a folder maintenance adopted is no longer refused
    elif isinstance(event, ProjectManifestWritten) and project is not None:
        rows.put_project(replace(project, manifest_version=event.version, updated_at=event.at))
    elif isinstance(event, ProjectTrashPurged):
        for trash_name in event.trash_names:
            rows.untrashed(event.project_id or "", trash_name)
    elif project is not None:
        return _project_lifecycle(rows, event, project)
    return []


def _project_lifecycle(rows: Rows, event: Event, project: ProjectRow) -> list[Message]:
    """Rename, delete, restore and purge; what a page showing the project hears of it."""
    at = event.at
    previous = None
    match event:
        case ProjectRenamed():
            previous = project.folder
            project = replace(project, name=event.name, folder=event.folder, updated_at=at)
            rows.refused[event.folder] = None
            name = "project_renamed"
        case ProjectDeleted():
            project = replace(project, deleted_at=at, updated_at=at)
            name = "project_deleted"
        case ProjectRestored():
            project = replace(project, folder=event.folder, deleted_at=None, updated_at=at)
            rows.refused[event.folder] = None
            name = "project_restored"
        case ProjectPurged():
            rows.drop_project(project.id)
            return []
        case _:
            return []
    rows.put_project(project)
    if not rows.relay:
        return []
    change = ProjectChange(project.id, project.folder, project.name, previous)
    return [Message(name, change, project.id, project.folder, False)]


def _apply_folder(rows: Rows, event: FolderRefused) -> list[Message]:
    rows.refused[event.folder] = RefusedFolder(folder=event.folder, reason=event.reason, at=event.at)
    return []


def with_files(photo: PhotoView, files: list[str], **changes: Any) -> PhotoView:
    """Availability follows the files; a variant that newly appears is kept (the user's intent is
    never overwritten otherwise: a keep flag changes only by keep, revert, or a new variant)."""
    kinds = set(map(kind_of, files))
    jpg, raw, other = "jpg" in kinds, "raw" in kinds, "other" in kinds
    return replace(
        photo,
        files=sorted(set(files)),
        jpg_available=jpg,
        raw_available=raw,
        other_available=other,
        keep_jpg=True if jpg and not photo.jpg_available else photo.keep_jpg,
        keep_raw=True if raw and not photo.raw_available else photo.keep_raw,
        keep_other=True if other and not photo.other_available else photo.keep_other,
        **changes,
    )


def _apply_photo(rows: Rows, event: PhotoEvent) -> list[Message]:
    project_id = event.project_id or ""
    project = rows.projects.get(project_id)
    if project is None:
        return []
    if type(event) is PhotoMoved:
        return _photo_arrived(rows, event, project)
    key = photo_key(project_id, event.filename)
    before = rows.photos.get(key)
    fold = _PHOTO_FOLDS.get(type(event))
    if fold is None or (before is None and type(event) not in _PHOTO_FOLDS_FROM_NONE):
        return []
    photo = fold(rows, event, before, key)
    if photo is not None and photo is before:
        return []  # nothing a reader of the photo sees changed
    rows.put_photo(key, photo)
    return _photo_messages(rows, project, before, photo, event.filename, event.at)


# How each photo event changes the photo (None: it is gone), with updated_at set; by exact class,
# as fold_of does. Only those in _PHOTO_FOLDS_FROM_NONE apply to a missing photo.


def _photo_file_added(rows: Rows, event: PhotoFileAdded, photo: PhotoView | None, key: str) -> PhotoView:
    at = event.at
    if photo is None:
        photo = PhotoView(
            id=key, project_id=event.project_id or "", filename=event.filename, created_at=at, updated_at=at
        )
    if event.replaced:
        rows.trashed(event.project_id or "", event.replaced, event.name, event.filename, at)
    if event.kind == "raw":
        return with_files(photo, [*photo.files, event.name], updated_at=at)
    return with_files(
        photo,
        [*photo.files, event.name],
        updated_at=at,
        thumbnail_status="pending",
        preview_status="pending",
        error=None,
    )


def _photo_removed(rows: Rows, event: PhotoRemoved, photo: PhotoView | None, key: str) -> None:
    return None


def _photo_files_restored(rows: Rows, event: PhotoFilesRestored, photo: PhotoView | None, key: str) -> PhotoView:
    at = event.at
    if photo is None:  # a restore brings a removed photo back
        photo = PhotoView(
            id=key, project_id=event.project_id or "", filename=event.filename, created_at=at, updated_at=at
        )
    for trash_name in event.trash_names:
        rows.untrashed(event.project_id or "", trash_name)
    files = [*photo.files, *[n for n in event.names if kind_of(n)]]
    if any(kind_of(n) in ("jpg", "other") for n in event.names):
        return with_files(photo, files, updated_at=at, thumbnail_status="pending", preview_status="pending", error=None)
    return with_files(photo, files, updated_at=at)


def _photo_metadata(rows: Rows, event: PhotoMetadataExtracted, photo: PhotoView, key: str) -> PhotoView:
    return _with_metadata(photo, event, event.at)


def _with_metadata(photo: PhotoView, meta: PhotoMetadata | PhotoMetadataExtracted, at: str) -> PhotoView:
    return replace(
        photo,
        taken_at=meta.taken_at,
        make=meta.make,
        model=meta.model,
        lens=meta.lens,
        orientation=meta.orientation,
        width=meta.width,
        height=meta.height,
        updated_at=at,
    )


def _photo_derivatives(rows: Rows, event: PhotoDerivativesUpdated, photo: PhotoView, key: str) -> PhotoView:
    thumb, preview = event.thumbnail_status, event.preview_status
    if event.metadata is not None:
        photo = _with_metadata(photo, event.metadata, event.at)
    if not (photo.jpg_available or photo.other_available or photo.raw_available) and "generated" in (thumb, preview):
        # A late report about a source a commit already removed: nothing was made from what is there.
        return replace(
            photo,
            thumbnail_status="missing",
            preview_status="missing",
            error=event.error,
            error_kind=None,
            made_from=None,
            made_from_size=None,
            made_from_mtime_ns=None,
            updated_at=event.at,
        )
    return replace(
        photo,
        thumbnail_status=thumb,
        preview_status=preview,
        error=event.error,
        error_kind=event.error_kind,
        made_from=event.made_from,
        made_from_size=event.made_from_size,
        made_from_mtime_ns=event.made_from_mtime_ns,
        updated_at=event.at,
    )


def _photo_keep(rows: Rows, event: PhotoKeepChanged, photo: PhotoView, key: str) -> PhotoView:
    return replace(
        photo,
        keep_jpg=photo.keep_jpg if event.keep_jpg is None else event.keep_jpg,
        keep_raw=photo.keep_raw if event.keep_raw is None else event.keep_raw,
        keep_other=photo.keep_other if event.keep_other is None else event.keep_other,
        updated_at=event.at,
    )


def _photo_sidecar(rows: Rows, event: PhotoSidecarAdded, photo: PhotoView, key: str) -> PhotoView:
    """A sidecar is not a variant: the photo stays as it is; the one it replaced is in the trash."""
    if event.replaced:
        rows.trashed(event.project_id or "", event.replaced, event.name, event.filename, event.at)
    return photo


def _photo_availability(rows: Rows, event: PhotoAvailabilityChanged, photo: PhotoView, key: str) -> PhotoView:
    return with_files(photo, event.files, updated_at=event.at)


def _photo_move_started(rows: Rows, event: PhotoMoveStarted, photo: PhotoView, key: str) -> PhotoView:
    return replace(photo, moving_to=event.to_project_id, updated_at=event.at)


def _photo_file_moved(rows: Rows, event: PhotoFileMoved, photo: PhotoView, key: str) -> PhotoView:
    return photo  # the log's record of each file; the photo is the same until it has arrived


def _photo_arrived(rows: Rows, event: PhotoMoved, project: ProjectRow) -> list[Message]:
    """The photo leaves the project it came from and lives here, as it was: files, decisions,
    metadata and derivatives (they moved with it)."""
    from_key = photo_key(event.from_project_id, event.filename)
    moving = rows.photos.get(from_key)
    if moving is None:
        return []  # arrived already: a late copy of the event changes nothing
    messages: list[Message] = []
    source = rows.projects.get(event.from_project_id)
    rows.put_photo(from_key, None)
    if source is not None:
        messages += _photo_messages(rows, source, moving, None, event.filename, event.at)
    key = photo_key(project.id, event.filename)
    before = rows.photos.get(key)
    after = replace(moving, id=key, project_id=project.id, moving_to=None, updated_at=event.at)
    rows.put_photo(key, after)
    project = rows.projects[project.id] or project  # counts changed above when it is also the source
    return messages + _photo_messages(rows, project, before, after, event.filename, event.at)


def _photo_files_trashed(rows: Rows, event: PhotoFilesTrashed, photo: PhotoView, key: str) -> PhotoView:
    for name, trash_name in zip(event.names, event.trash_names):
        rows.trashed(event.project_id or "", trash_name, name, event.filename, event.trashed_at)
    return with_files(photo, [f for f in photo.files if f not in event.names], updated_at=event.at)


_PHOTO_FOLDS: dict[type, Callable[[Rows, Any, Any, str], PhotoView | None]] = {
    PhotoFileAdded: _photo_file_added,
    PhotoRemoved: _photo_removed,
    PhotoFilesRestored: _photo_files_restored,
    PhotoMetadataExtracted: _photo_metadata,
    PhotoDerivativesUpdated: _photo_derivatives,
    PhotoKeepChanged: _photo_keep,
    PhotoAvailabilityChanged: _photo_availability,
    PhotoFilesTrashed: _photo_files_trashed,
    PhotoSidecarAdded: _photo_sidecar,
    PhotoMoveStarted: _photo_move_started,
    PhotoFileMoved: _photo_file_moved,
}
_PHOTO_FOLDS_FROM_NONE = frozenset({PhotoFileAdded, PhotoRemoved, PhotoFilesRestored})


def _photo_messages(
    rows: Rows, project: ProjectRow, before: PhotoView | None, after: PhotoView | None, filename: str, at: str
) -> list[Message]:
    a_photos, a_jpg, a_raw, a_other = _counts(after)
    b_photos, b_jpg, b_raw, b_other = _counts(before)
    a_pending, b_pending = a_jpg or a_raw or a_other, b_jpg or b_raw or b_other
    project = rows.put_project(
        replace(
            project,
            photo_count=project.photo_count + a_photos - b_photos,
            pending_photos=project.pending_photos + a_pending - b_pending,
            pending_jpg=project.pending_jpg + a_jpg - b_jpg,
            pending_raw=project.pending_raw + a_raw - b_raw,
            pending_other=project.pending_other + a_other - b_other,
            updated_at=at,
        )
    )
    if not rows.relay:
        return []
    if after is not None:
        messages = [Message("item", Item(project.id, project.folder, after), project.id, project.folder, False)]
    else:
        messages = [
            Message(
                "item_removed", ItemRemoved(project.id, project.folder, filename), project.id, project.folder, False
            )
        ]
    if a_pending != b_pending or a_jpg != b_jpg or a_raw != b_raw or a_other != b_other:
        messages.append(
            Message(
                "pending_changes",
                PendingChanges(project.id, project.folder, project.pending),
                project.id,
                project.folder,
                False,
            )
        )
    return messages


def _counts(photo: PhotoView | None) -> tuple[int, bool, bool, bool]:
    """Whether it is a photo, and its pending JPG, RAW and OTHER (PhotoView.pending_*, read directly: this
    runs twice for every photo event, where the property calls showed in a rebuild's profile)."""
    if photo is None:
        return 0, False, False, False
    return (
        1,
        photo.jpg_available and not photo.keep_jpg,
        photo.raw_available and not photo.keep_raw,
        photo.other_available and not photo.keep_other,
    )


def _task_update(rows: Rows, task: TaskView) -> list[Message]:
    rows.put_task(task)
    return [Message("task_update", task, task.project_id, task.folder, task.maintenance)] if rows.relay else []


def _job_update(rows: Rows, job: JobView) -> list[Message]:
    rows.put_job(job)
    return [Message("job_update", job, job.project_id, job.folder, job.maintenance)] if rows.relay else []


def _apply_task(rows: Rows, event: Event) -> list[Message]:
    task = rows.tasks.get(event.task_id or "")
    at = event.at
    if isinstance(event, TaskRequested):
        if task is not None:
            return []
        task = TaskView(
            id=event.task_id or "",
            type=event.task_type,
            label=event.label,
            user_relevant=event.user_relevant,
            source=event.source,
            project_id=event.project_id,
            folder=event.folder,
            status="queued",
            step_index=event.start_step,
            steps=list(event.steps),
            created_at=at,
            updated_at=at,
            maintenance=is_maintenance(event.user_relevant, event.source),
            retry_of=event.retry_of,
            start_step=event.start_step,
        )
        messages = _task_update(rows, task)
        retried = rows.tasks.get(event.retry_of) if event.retry_of else None
        if retried is not None:
            messages += _task_update(rows, replace(retried, retried_by=task.id, updated_at=at))
        return messages
    if task is None:
        return []
    match event:
        case TaskStarted():
            task = replace(task, status="running", started_at=at)
        case TaskCancelRequested():
            task = replace(task, cancel_requested=True)
        case TaskCompleted():
            task = replace(task, status="completed", finished_at=at)
        case TaskFailed():
            task = replace(task, status="failed", finished_at=at, error=event.error, step_index=event.step_index)
        case TaskCanceled():
            task = replace(task, status="canceled", finished_at=at)
        case _:
            return []
    return _task_update(rows, replace(task, updated_at=at))


def _apply_job(rows: Rows, event: JobEvent) -> list[Message]:
    job = rows.jobs.get(event.job_id or "")
    at = event.at
    if type(event) is JobRequested:
        if job is not None:
            return []
        task = rows.tasks.get(event.task_id or "")
        job = JobView(
            id=event.job_id or "",
            task_id=event.task_id or "",
            task_type=event.task_type,
            source=event.source,
            type=event.job_type,
            project_id=event.project_id,
            folder=event.folder,
            priority=event.priority,
            lane=event.lane,
            status="queued",
            step_index=event.step_index,
            progress_total=len(event.items),
            created_at=at,
            updated_at=at,
            maintenance=task.maintenance if task else event.source == "maintenance",
        )
        messages = _job_update(rows, job)
        if task is not None and task.status == "queued":  # a task is running from its first job.requested
            messages += _task_update(
                rows, replace(task, status="running", started_at=at, step_index=event.step_index, updated_at=at)
            )
        elif task is not None and task.step_index != event.step_index:
            messages += _task_update(rows, replace(task, step_index=event.step_index, updated_at=at))
        return messages
    if job is None or job.status in TERMINAL:
        return []  # a finished job stays finished: late duplicates of a redelivery change nothing
    fold = _JOB_FOLDS.get(type(event))
    return [] if fold is None else _job_update(rows, fold(job, event))


def _started(job: JobView, event: AttemptEnded) -> str | None:
    """When the outcome's attempt started: from its job.started if one was stored, else as the outcome says."""
    if job.status == "running" and job.attempts == event.attempt or event.started_at is None:
        return job.started_at
    return event.started_at


def _completed(job: JobView, event: JobCompleted) -> JobView:
    job = replace(
        job,
        status="completed",
        attempts=event.attempt,
        started_at=_started(job, event),
        finished_at=event.at,
        error=None,
        updated_at=event.at,
    )
    if event.done is None or event.total is None:
        return job
    return replace(job, progress_done=event.done, progress_total=event.total)


# How each later job event changes its job, with updated_at set; by exact class, as fold_of does.
_JOB_FOLDS: dict[type, Callable[[JobView, Any], JobView]] = {
    JobStarted: lambda job, event: replace(
        job, status="running", attempts=event.attempt, started_at=event.at, finished_at=None, updated_at=event.at
    ),
    JobProgress: lambda job, event: replace(
        job, progress_done=event.done, progress_total=event.total, updated_at=event.at
    ),
    JobRetrying: lambda job, event: replace(
        job,
        status="retrying",
        attempts=event.attempt,
        error=event.error,
        started_at=_started(job, event),
        updated_at=event.at,
    ),
    JobCompleted: _completed,
    JobFailed: lambda job, event: replace(
        job,
        status="failed",
        attempts=max(job.attempts, event.attempt),
        started_at=_started(job, event),
        error=event.error,
        finished_at=event.at,
        updated_at=event.at,
    ),
    JobCanceled: lambda job, event: replace(job, status="canceled", finished_at=event.at, updated_at=event.at),
}
