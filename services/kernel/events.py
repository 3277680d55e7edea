"""Every fact Darkroom records: one envelope, typed events, a codec with upcasters.

An event type `a.b` is the Struct `AB`; its JSON Schema is `schemas/events/a.b.json`.
Never change what a published version means: add a version and an upcaster instead.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable, Iterable

import msgspec

from .clock import now_iso
from .ids import new_id
from .vocabulary import DerivativeStatus, FailureKind, Kind, Lane, Regenerated, Source


class Event(msgspec.Struct, kw_only=True, tag_field="type", gc=False):
    """The envelope every event shares. A value that never refers back to anything: untracked by the
    cyclic collector (gc=False), which makes decoding one cheaper."""

    id: str = msgspec.field(default_factory=new_id)
    v: int = 1
    at: str = msgspec.field(default_factory=now_iso)
    project_id: str | None = None
    task_id: str | None = None
    job_id: str | None = None
    causation_id: str | None = None
    source: Source = "system"

    @property
    def type(self) -> str:
        return type_name(type(self))


def type_name(cls: type[Event]) -> str:
    """The event type of a Struct class, e.g. `task.requested`."""
    name = _TYPE_NAMES.get(cls)
    if name is None:  # msgspec builds a new StructConfig on every access: look it up once per class
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str):
            raise TypeError(f"{cls.__name__} is not an event type: it has no tag")
        name = _TYPE_NAMES[cls] = tag
    return name


_TYPE_NAMES: dict[type, str] = {}


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    type: str
    priority: int


class TaskParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """What a task takes besides its items; each task type reads the fields that are its own."""

    what: list[Regenerated] | None = None  # regenerate: what to make again (None: both)
    name: str | None = None  # project_rename: the project's new name


# -- tasks: darkroom.task.<project_id>.<task_id>.<event> ------------------------------------


class TaskRequested(Event, tag="task.requested"):
    task_type: str
    label: str
    user_relevant: bool
    steps: list[Step]
    items: list[str] = []
    folder: str | None = None
    retry_of: str | None = None  # the failed or canceled task this one runs again
    start_step: int = 0  # the first step it runs: a retry starts at the step its task stopped at
    params: TaskParams | None = None


class TaskStarted(Event, tag="task.started"):
    pass


class TaskCancelRequested(Event, tag="task.cancel_requested"):
    pass


class TaskCompleted(Event, tag="task.completed"):
    pass


class TaskFailed(Event, tag="task.failed"):
    error: str
    step_index: int


class TaskCanceled(Event, tag="task.canceled"):
    step_index: int | None = None


# -- jobs: darkroom.job.<project_id>.<task_id>.<event> (job.requested: ….requested.<lane>.<job_type>) --


class JobEvent(Event, kw_only=True):
    task_type: str
    job_type: str
    step_index: int


class JobRequested(JobEvent, tag="job.requested"):
    priority: int
    lane: Lane
    items: list[str] = []
    folder: str | None = None
    params: TaskParams | None = None  # the task's, on every step


class JobStarted(JobEvent, tag="job.started"):
    attempt: int
    worker: str


class JobProgress(JobEvent, tag="job.progress"):
    done: int
    total: int


class AttemptEnded(JobEvent, kw_only=True):
    """An attempt's end. A job that ends within 250 ms stores no job.started: its outcome says when the
    attempt started and where (on every outcome, job.started stored or not)."""

    attempt: int
    started_at: str | None = None
    worker: str | None = None


class JobRetrying(AttemptEnded, tag="job.retrying"):
    error: str
    delay_s: float


class JobCompleted(AttemptEnded, tag="job.completed"):
    # The job's last progress, when no job.progress stored it (a job done within 250 ms stores none).
    done: int | None = None
    total: int | None = None


class JobFailed(AttemptEnded, tag="job.failed"):
    error: str


class JobCanceled(JobEvent, tag="job.canceled"):
    reason: str = "task canceled"


# -- projects: darkroom.project.<project_id>.<event> ---------------------------------------------


class ProjectCreated(Event, tag="project.created"):
    name: str
    folder: str


class ProjectManifestWritten(Event, tag="project.manifest_written"):
    version: int
    reason: str = "created"


class ProjectTrashPurged(Event, tag="project.trash_purged"):
    """Trash entries past their time to live were deleted for good."""

    trash_names: list[str]


class ProjectRenamed(Event, tag="project.renamed"):
    """The project has a new name, and its folder the name made of it (the id stays)."""

    name: str
    folder: str
    previous_folder: str


class ProjectDeleted(Event, tag="project.deleted"):
    """The project's folder went to `DIR/trash/<project_id>`; it can be restored until the trash TTL,
    counted from this event, has passed. Its photos keep their basenames until it is purged."""

    folder: str  # the folder it had


class ProjectRestored(Event, tag="project.restored"):
    """A deleted project is back, in this folder (its old one, or a numbered one when that was taken)."""

    folder: str


class ProjectPurged(Event, tag="project.purged"):
    """A deleted project's folder was removed for good, its trash TTL over; its basenames are free."""


# -- photos: darkroom.photo.<project_id>.<photo_key>.<event> ------------------------------------


class PhotoEvent(Event, kw_only=True):
    filename: str  # the photo's basename


class PhotoFileAdded(PhotoEvent, tag="photo.file_added"):
    """A variant file is in the folder: uploaded, or found by folder_check."""

    name: str
    kind: Kind
    size: int
    sha256: str | None = None
    replaced: str | None = None  # the trash name of the different file this one replaced


class PhotoMetadata(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a photo's EXIF and image header say."""

    taken_at: str | None = None
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    width: int | None = None
    height: int | None = None
    lens: str | None = None  # LensModel, after LensMake when it adds to it


class PhotoMetadataExtracted(PhotoEvent, tag="photo.metadata_extracted"):
    """Metadata read without derivatives made (photo.derivatives_updated carries it when both are)."""

    taken_at: str | None = None
    make: str | None = None
    model: str | None = None
    orientation: int | None = None
    width: int | None = None
    height: int | None = None
    lens: str | None = None  # LensModel, after LensMake when it adds to it; None in events from before lenses


class PhotoDerivativesUpdated(PhotoEvent, tag="photo.derivatives_updated"):
    thumbnail_status: DerivativeStatus
    preview_status: DerivativeStatus
    error: str | None = None
    error_kind: FailureKind | None = None
    # The variant file the derivatives were made (or failed to be made) from, as it was then: a
    # later maintenance remakes them once that file is another one, or another variant is the source.
    made_from: str | None = None
    made_from_size: int | None = None
    made_from_mtime_ns: int | None = None
    metadata: PhotoMetadata | None = None  # read from the source while the derivatives were made


class PhotoKeepChanged(PhotoEvent, tag="photo.keep_changed"):
    keep_jpg: bool | None = None
    keep_raw: bool | None = None
    keep_other: bool | None = None


class PhotoSidecarAdded(PhotoEvent, tag="photo.sidecar_added"):
    """A sidecar (`DSC01.xmp`, `DSC01.ARW.xmp`) was uploaded beside its photo; it is never a photo."""

    name: str
    size: int
    sha256: str | None = None
    replaced: str | None = None  # the trash name of the different sidecar this one replaced


class PhotoAvailabilityChanged(PhotoEvent, tag="photo.availability_changed"):
    """What is on disk now for this photo; a variant that newly appears is kept."""

    files: list[str]
    jpg_available: bool
    raw_available: bool
    other_available: bool


class PhotoFilesTrashed(PhotoEvent, tag="photo.files_trashed"):
    names: list[str]
    trash_names: list[str]
    trashed_at: str


class PhotoFilesRestored(PhotoEvent, tag="photo.files_restored"):
    names: list[str]
    trash_names: list[str]


class PhotoRemoved(PhotoEvent, tag="photo.removed"):
    reason: str


class PhotoMoveStarted(PhotoEvent, tag="photo.move_started"):
    """The photo is moving to another project with these files (variants, sidecars, derivatives):
    until `photo.moved`, maintenance finishes a move that stopped half-way."""

    to_project_id: str
    names: list[str]


class PhotoFileMoved(PhotoEvent, tag="photo.file_moved"):
    """One file of a moving photo is in the other project's folder now."""

    name: str
    to_project_id: str


class PhotoMoved(PhotoEvent, tag="photo.moved"):
    """The photo arrived from another project with every file, its decisions and derivatives intact:
    stored under the project it now lives in."""

    from_project_id: str
    names: list[str]


# -- basenames: darkroom.basename.<name_key>.<event> ---------------------------------------------


class BasenameClaimed(Event, tag="basename.claimed"):
    """The project in the envelope took this basename for a file it is saving: a basename lives in one
    project only, and each claim is stored only if the last one on its subject is the one its writer
    saw, so two projects never both take it."""

    filename: str


# -- lanes: darkroom.lane.<lane>.<event> ------------------------------------------------------


class LaneEvent(Event, kw_only=True):
    lane: Lane


class LanePaused(LaneEvent, tag="lane.paused"):
    """No worker takes a new job from this lane until it is resumed; jobs running on it finish."""


class LaneResumed(LaneEvent, tag="lane.resumed"):
    """Workers take jobs from this lane again."""


# -- dead letters: darkroom.dead_letter.<seq>.<event> ---------------------------------------------


class DeadLetterEvent(Event, kw_only=True):
    seq: int  # the stream sequence of the message set aside


class DeadLetterRecorded(DeadLetterEvent, tag="dead_letter.recorded"):
    """The projector could not read the message at `seq` and set it aside. Every read model built
    from the log sets it aside too, whatever a later version can read, until it is applied or discarded."""

    subject: str
    reason: str


class DeadLetterDiscarded(DeadLetterEvent, tag="dead_letter.discarded"):
    """Looked at and let go: no longer listed, never applied."""


class DeadLetterApplied(DeadLetterEvent, tag="dead_letter.applied"):
    """Readable now (an upcaster shipped): the read models apply the message at this event's place in the log."""


# -- folders: darkroom.folder.<name_key>.<event> ------------------------------------------------


class FolderRefused(Event, tag="folder.refused"):
    """A folder under `DIR/projects/` that maintenance cannot adopt as a project, and why."""

    folder: str
    reason: str


TASK_EVENTS: tuple[type[Event], ...] = (
    TaskRequested,
    TaskStarted,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskCanceled,
)
JOB_EVENTS: tuple[type[Event], ...] = (
    JobRequested,
    JobStarted,
    JobProgress,
    JobRetrying,
    JobCompleted,
    JobFailed,
    JobCanceled,
)
PROJECT_EVENTS: tuple[type[Event], ...] = (
    ProjectCreated,
    ProjectManifestWritten,
    ProjectTrashPurged,
    ProjectRenamed,
    ProjectDeleted,
    ProjectRestored,
    ProjectPurged,
)
PHOTO_EVENTS: tuple[type[Event], ...] = (
    PhotoFileAdded,
    PhotoMetadataExtracted,
    PhotoDerivativesUpdated,
    PhotoKeepChanged,
    PhotoSidecarAdded,
    PhotoAvailabilityChanged,
    PhotoFilesTrashed,
    PhotoFilesRestored,
    PhotoRemoved,
    PhotoMoveStarted,
    PhotoFileMoved,
    PhotoMoved,
)
BASENAME_EVENTS: tuple[type[Event], ...] = (BasenameClaimed,)
LANE_EVENTS: tuple[type[Event], ...] = (LanePaused, LaneResumed)
DEAD_LETTER_EVENTS: tuple[type[Event], ...] = (DeadLetterRecorded, DeadLetterDiscarded, DeadLetterApplied)
FOLDER_EVENTS: tuple[type[Event], ...] = (FolderRefused,)
ALL_EVENTS: tuple[type[Event], ...] = (
    TASK_EVENTS
    + JOB_EVENTS
    + PROJECT_EVENTS
    + PHOTO_EVENTS
    + BASENAME_EVENTS
    + LANE_EVENTS
    + DEAD_LETTER_EVENTS
    + FOLDER_EVENTS
)


class PoisonEvent(Exception):
    """A message that cannot be read as an event: it is set aside, never retried."""


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Codec:
    """Encodes events and decodes them at their current version, upcasting older ones."""

    def __init__(
        self,
        event_types: Iterable[type[Event]] = ALL_EVENTS,
        upcasters: dict[tuple[str, int], Upcaster] | None = None,
    ) -> None:
        self.types = {type_name(t): t for t in event_types}
        self.upcasters = dict(upcasters or {})
        self._current = {name: _default_version(t) for name, t in self.types.items()}
        self._current_of = {
            t: _default_version(t) for t in self.types.values()
        }  # by class: Event.type is dear on this path
        union = tuple(self.types.values())
        self._decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(
            union[0] if len(union) == 1 else _union(union)
        )
        self._raw = msgspec.json.Decoder(dict[str, Any])
        self._encoder = msgspec.json.Encoder()

    def encode(self, event: Event) -> bytes:
        return self._encoder.encode(event)

    def decode(self, data: bytes) -> Event:
        try:
            event = self._decoder.decode(data)
        except msgspec.DecodeError:
            return self._decode_slow(data)
        if event.v != self._current_of[type(event)]:
            return self._decode_slow(data)
        return event

    def _decode_slow(self, data: bytes) -> Event:
        try:
            raw = self._raw.decode(data)
        except msgspec.DecodeError as exc:
            raise PoisonEvent(f"not valid JSON: {exc}") from None
        name = raw.get("type")
        cls = self.types.get(name) if isinstance(name, str) else None
        if cls is None or not isinstance(name, str):
            raise PoisonEvent(f"unknown event type {name!r}")
        version = raw.get("v", 1)
        current = self._current[name]
        if not isinstance(version, int) or version > current:
            raise PoisonEvent(f"{name} has unsupported version {version!r} (current {current})")
        while version < current:
            upcast = self.upcasters.get((name, version))
            if upcast is None:
                raise PoisonEvent(f"no upcaster for {name} v{version}")
            raw = upcast(raw)
            version += 1
            raw["v"] = version
        try:
            event: Event = msgspec.convert(raw, cls)
            return event
        except msgspec.ValidationError as exc:
            raise PoisonEvent(f"{name} fails validation: {exc}") from None


def _default_version(cls: type[Event]) -> int:
    return int(next(f.default for f in msgspec.structs.fields(cls) if f.name == "v"))


def _union(types: tuple[type[Event], ...]) -> Any:
    """`A | B | …` of the event types: one decoder picks the Struct by its tag."""
    return functools.reduce(operator.or_, types)
