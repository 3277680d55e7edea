"""`darkroom audit`: the history of one task, photo or project, read from the event log.

It reads the log, never the read models, and lets the server do the filtering: a task's events
are on `darkroom.*.<project_id>.<task_id>.>`, a photo's on `darkroom.photo.<project_id>.<key>.>`
(CONTRACT §4), so nothing unrelated is sent over the wire. Events are decoded with the codec, so
an older version is shown upcast to the current one; a message that cannot be read is shown as a
dead letter with the reason.
"""

from __future__ import annotations

import re
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Sequence

import msgspec

from .kernel import subjects
from .kernel.bus import Bus
from .kernel.events import (
    AttemptEnded,
    DeadLetterApplied,
    DeadLetterDiscarded,
    DeadLetterRecorded,
    Event,
    JobCanceled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgress,
    JobRequested,
    JobRetrying,
    JobStarted,
    LanePaused,
    LaneResumed,
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
    PoisonEvent,
    ProjectCreated,
    ProjectDeleted,
    ProjectManifestWritten,
    ProjectPurged,
    ProjectRenamed,
    ProjectRestored,
    ProjectTrashPurged,
    TaskCanceled,
    TaskFailed,
    TaskRequested,
)
from .kernel.photos import basename

# A project's history leaves out job.started / job.progress / job.retrying (per attempt, noisy):
# `audit task` shows them.
PROJECT_JOB_EVENTS = ("requested", "completed", "failed", "canceled")
ENVELOPE_ORDER = ("id", "type", "v", "at", "project_id", "task_id", "job_id", "causation_id", "source")
ENVELOPE = frozenset(ENVELOPE_ORDER)
_TOKEN = re.compile(r"^[^\s.*>]+$")  # one subject token: no dots, wildcards or whitespace


class NotFound(Exception):
    """The task, project or photo asked about has no events in the log."""


@dataclass(frozen=True)
class Entry:
    """One stored message: its event (decoded and upcast), or why it could not be read."""

    seq: int
    subject: str
    stored_at: str
    event: Event | None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.event is None:
            return {"seq": self.seq, "subject": self.subject, "at": self.stored_at, "dead_letter": self.reason}
        fields = msgspec.to_builtins(self.event)
        envelope = {key: fields.pop(key) for key in ENVELOPE_ORDER}
        return {"seq": self.seq, "subject": self.subject, **envelope, **fields}


# -- reading ----------------------------------------------------------------------------------------


async def read(bus: Bus, filters: list[str], limit: int | None = None) -> list[Entry]:
    """The messages on `filters`, oldest first (at most `limit`)."""
    entries: list[Entry] = []
    async with aclosing(bus.read(filters)) as batches:
        async for batch in batches:
            for stored in batch:
                try:
                    event = bus.codec.decode(stored.data)
                except PoisonEvent as exc:
                    entries.append(Entry(stored.seq, stored.subject, stored.at, None, str(exc)))
                else:
                    entries.append(Entry(stored.seq, stored.subject, stored.at, event))
                if limit is not None and len(entries) >= limit:
                    return entries
    return entries


def _token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise NotFound(f"no {what} {value!r} in the log (not a valid id)")
    return value


async def task_project(bus: Bus, task_id: str) -> str:
    """The project token of a task (`_` for work without a project), from its task.requested."""
    found = await read(bus, [subjects.task_anywhere(_token(task_id, "task"), "requested")], limit=1)
    if not found:
        raise NotFound(f"no task {task_id!r} in the log")
    return subjects.project_token_of(found[0].subject)


async def project_id(bus: Bus, folder: str) -> str:
    """The id of the project that had this folder last: created, renamed or restored into it (a project
    renamed since is found by its old folder too, unless another took that one)."""
    found: str | None = None
    filters = [subjects.any_project(name) for name in ("created", "renamed", "restored")]
    for entry in await read(bus, filters):
        if isinstance(entry.event, (ProjectCreated, ProjectRenamed, ProjectRestored)) and entry.event.folder == folder:
            found = entry.event.project_id
    if found is None:
        raise NotFound(f"no project with folder {folder!r} in the log")
    return found


async def task_history(bus: Bus, task_id: str) -> list[Entry]:
    project = await task_project(bus, task_id)
    return await read(bus, [subjects.task_events(project, task_id)])


async def photo_history(bus: Bus, folder: str, filename: str) -> list[Entry]:
    """Every event of one photo; FILENAME is its basename (`DSC01`), or a file of it (`DSC01.JPG`)."""
    project = await project_id(bus, folder)
    for name in dict.fromkeys([filename, basename(filename)]):
        if name:
            entries = await read(bus, [subjects.photo_subject(project, name)])
            if entries:
                return entries
    raise NotFound(f"no photo {filename!r} in project {folder!r}")


async def lane_history(bus: Bus, lane: str) -> list[Entry]:
    """Every pause and resume of a lane, with who asked."""
    entries = await read(bus, [subjects.lane_events(_token(lane, "lane"))])
    if not entries:
        raise NotFound(f"lane {lane!r} was never paused or resumed")
    return entries


async def dead_letter_history(bus: Bus, seq: int) -> list[Entry]:
    """The message set aside at `seq` as this version reads it, then what became of it."""
    stored = await bus.stored(seq)
    handled = await read(bus, [subjects.dead_letter_events(seq)])
    if stored is None and not handled:
        raise NotFound(f"no message at sequence {seq} in the log")
    if stored is None:
        return handled
    try:
        first = Entry(stored.seq, stored.subject, stored.at, bus.codec.decode(stored.data))
    except PoisonEvent as exc:
        first = Entry(stored.seq, stored.subject, stored.at, None, str(exc))
    return [first, *handled]


async def project_history(bus: Bus, folder: str) -> list[Entry]:
    """The project's, its photos', its tasks' events, and its jobs' requested and outcome events."""
    project = _token(await project_id(bus, folder), "project")
    # A request has its lane in its subject (CONTRACT §7.1); one from before it has not.
    return await read(
        bus, [*subjects.project_history(project, PROJECT_JOB_EVENTS), subjects.job_subject(project, "*", "requested.>")]
    )


# -- showing ----------------------------------------------------------------------------------------

COLUMNS = ("SEQ", "TIME", "TYPE", "SOURCE", "TASK", "JOB", "DETAIL")


def row(entry: Entry) -> tuple[str, ...]:
    event = entry.event
    if event is None:
        return (str(entry.seq), entry.stored_at, "(dead letter)", "-", "-", "-", f"{entry.subject}: {entry.reason}")
    kind = event.type if event.v == 1 else f"{event.type} v{event.v}"
    return (str(entry.seq), event.at, kind, event.source, event.task_id or "-", event.job_id or "-", detail(event))


def table(entries: list[Entry]) -> str:
    return text_table([COLUMNS] + [row(e) for e in entries])


def text_table(rows: Sequence[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, the last one as it is."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "".join("  ".join([*(cell.ljust(w) for cell, w in zip(r, widths)), r[-1]]).rstrip() + "\n" for r in rows)


def json_lines(entries: list[Entry]) -> str:
    encode = msgspec.json.encode
    return "".join(encode(e.as_json()).decode() + "\n" for e in entries)


def _names(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" (+{len(names) - most} more)" if len(names) > most else "")


def _camera(make: str | None, model: str | None) -> str:
    if make and model and model.lower().startswith(make.lower()):
        return model  # `Canon` + `Canon EOS 40D`
    return " ".join(p for p in (make, model) if p)


def _metadata(meta: PhotoMetadata | PhotoMetadataExtracted) -> str:
    parts = [
        f"taken {meta.taken_at}" if meta.taken_at else "",
        _camera(meta.make, meta.model),
        f"{meta.width}x{meta.height}" if meta.width and meta.height else "",
        f"orientation {meta.orientation}" if meta.orientation else "",
    ]
    return ", ".join(p for p in parts if p) or "no metadata"


def _attempt(event: AttemptEnded) -> str:
    """An attempt's end names its worker: a quick one stored no job.started that would have."""
    where = f" on {event.worker}" if event.worker else ""
    return f"step {event.step_index} {event.job_type}, attempt {event.attempt}{where}"


def detail(event: Event) -> str:
    """A short line saying what is particular about this event."""
    match event:
        case TaskRequested():
            steps = " → ".join(s.type for s in event.steps)
            items = f"; items {_names(event.items)}" if event.items else ""
            params = "".join(f"; {k} {v!r}" for k, v in msgspec.to_builtins(event.params or {}).items())
            retry = f"; retry of {event.retry_of}" if event.retry_of else ""
            start = f" from step {event.start_step}" if event.start_step else ""
            return f"{event.task_type}: {steps}{items}{params}{retry}{start}"
        case TaskFailed():
            return f"step {event.step_index}: {event.error}"
        case TaskCanceled():
            return f"at step {event.step_index}" if event.step_index is not None else ""
        case JobRequested():
            items = f", {len(event.items)} items" if event.items else ""
            return f"step {event.step_index} {event.job_type}, priority {event.priority}, {event.lane} lane{items}"
        case JobStarted():
            return f"step {event.step_index} {event.job_type}, attempt {event.attempt} on {event.worker}"
        case JobProgress():
            return f"step {event.step_index} {event.job_type}, {event.done}/{event.total}"
        case JobRetrying():
            return f"{_attempt(event)}: {event.error}; again in {event.delay_s:g}s"
        case JobCompleted():
            return _attempt(event)
        case JobFailed():
            return f"{_attempt(event)}: {event.error}"
        case JobCanceled():
            return f"step {event.step_index} {event.job_type}: {event.reason}"
        case ProjectCreated():
            return f"folder {event.folder!r}, name {event.name!r}"
        case ProjectManifestWritten():
            return f"version {event.version} ({event.reason})"
        case ProjectTrashPurged():
            return f"purged {_names(event.trash_names)}"
        case ProjectRenamed():
            return f"folder {event.previous_folder!r} → {event.folder!r}, name {event.name!r}"
        case ProjectDeleted():
            return f"folder {event.folder!r} to the trash"
        case ProjectRestored():
            return f"back from the trash, in folder {event.folder!r}"
        case ProjectPurged():
            return "deleted for good"
        case PhotoMoveStarted():
            return f"{event.filename}: moving to project {event.to_project_id}: {_names(event.names)}"
        case PhotoFileMoved():
            return f"{event.filename}: {event.name} moved to project {event.to_project_id}"
        case PhotoMoved():
            return f"{event.filename}: arrived from project {event.from_project_id} with {_names(event.names)}"
        case PhotoFileAdded():
            replaced = f", replaced the old one (now {event.replaced})" if event.replaced else ""
            return f"{event.filename}: {event.name} ({event.kind}, {event.size} bytes){replaced}"
        case PhotoMetadataExtracted():
            return f"{event.filename}: {_metadata(event)}"
        case PhotoDerivativesUpdated():
            made_from = f" from {event.made_from}" if event.made_from else ""
            kind = f"{event.error_kind}: " if event.error_kind else ""
            error = f" ({kind}{event.error})" if event.error else ""
            metadata = f"; {_metadata(event.metadata)}" if event.metadata is not None else ""
            return (
                f"{event.filename}: thumbnail {event.thumbnail_status}, preview {event.preview_status}"
                f"{made_from}{error}{metadata}"
            )
        case PhotoKeepChanged():
            flags = [
                f"{name} {'yes' if value else 'no'}"
                for name, value in (
                    ("keep_jpg", event.keep_jpg),
                    ("keep_raw", event.keep_raw),
                    ("keep_other", event.keep_other),
                )
                if value is not None
            ]
            return f"{event.filename}: " + (", ".join(flags) or "unchanged")
        case PhotoSidecarAdded():
            replaced = f", replaced the old one (now {event.replaced})" if event.replaced else ""
            return f"{event.filename}: sidecar {event.name} ({event.size} bytes){replaced}"
        case PhotoAvailabilityChanged():
            return f"{event.filename}: files {_names(event.files) or 'none'}"
        case PhotoFilesTrashed():
            moves = [n if n == t else f"{n} as {t}" for n, t in zip(event.names, event.trash_names)]
            return f"{event.filename}: {_names(moves)} to the trash"
        case PhotoFilesRestored():
            return f"{event.filename}: {_names(event.names)} back from the trash"
        case PhotoRemoved():
            return f"{event.filename}: {event.reason}"
        case LanePaused() | LaneResumed():
            return f"lane {event.lane} {'paused' if isinstance(event, LanePaused) else 'resumed'}"
        case DeadLetterRecorded():
            return f"message {event.seq} on {event.subject} set aside: {event.reason}"
        case DeadLetterDiscarded():
            return f"message {event.seq} discarded"
        case DeadLetterApplied():
            return f"message {event.seq} applied here"
    # Any other event (a job's own or an extension's type): its fields beyond the envelope.
    fields = {k: v for k, v in msgspec.to_builtins(event).items() if k not in ENVELOPE}
    prefix = f"{event.filename}: " if isinstance(event, PhotoEvent) else ""
    if isinstance(event, JobEvent):
        prefix = f"step {event.step_index} {event.job_type}: "
        fields = {k: v for k, v in fields.items() if k not in ("task_type", "job_type", "step_index")}
    return prefix + ", ".join(f"{k}={v}" for k, v in fields.items())
