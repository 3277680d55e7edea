"""What must hold after a run with faults, as pure functions of what the suite gathered: the event
log, the files on disk, the ledger of acknowledged uploads and what the live SSE client saw.
Each returns the problems it found, one line each, naming what broke."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from darkroom.kernel.clock import parse_iso
from darkroom.kernel.photos import basename, kind_of

JOB_OUTCOMES = ("job.completed", "job.failed", "job.canceled")
TASK_OUTCOMES = ("task.completed", "task.failed", "task.canceled")
RUNNING = ("job.started", "job.progress", "job.retrying")  # a job that is running stores these


@dataclass(frozen=True)
class Entry:
    """One stored message: its stream sequence, subject, when the stream stored it, the event."""

    seq: int
    subject: str
    at: float  # epoch seconds
    event: dict


@dataclass
class Listing:
    """One project folder: its originals and its trash, by name, with their SHA-256."""

    files: dict[str, str] = field(default_factory=dict)
    trash: dict[str, str] = field(default_factory=dict)


def _type(entry: Entry) -> str:
    return entry.event.get("type", "")


def _job_events(log: list[Entry]):
    """Job events on their own subjects (the dispatch copies of job.requested left out)."""
    return (e for e in log if e.subject.startswith("darkroom.job."))


def _first_outcomes(log: list[Entry]) -> dict[str, int]:
    first: dict[str, int] = {}
    for entry in _job_events(log):
        if _type(entry) in JOB_OUTCOMES:
            first.setdefault(entry.event.get("job_id") or "", entry.seq)
    return first


def jobs_twice(log: list[Entry]) -> list[str]:
    """A job has one outcome, and nothing of it runs once it has one: no start, no progress, no effect.
    One line per job that broke this, with what it stored twice or late."""
    job_types: dict[str, str] = {}
    outcomes: dict[str, list[str]] = defaultdict(list)
    late: dict[str, list[str]] = defaultdict(list)
    first = _first_outcomes(log)
    for entry in log:
        job = entry.event.get("job_id")
        if not job:
            continue
        kind = _type(entry)
        if kind == "job.requested":
            job_types.setdefault(job, entry.event.get("job_type", "?"))
        if entry.subject.startswith("darkroom.job.") and kind in JOB_OUTCOMES:
            outcomes[job].append(f"{kind[4:]}@{entry.seq}")
        if (
            job in first
            and entry.seq > first[job]
            and (kind in RUNNING or entry.subject.startswith(("darkroom.photo.", "darkroom.project.")))
        ):
            late[job].append(f"{kind}@{entry.seq}")
    problems = []
    for job in dict.fromkeys([*(j for j, seen in outcomes.items() if len(seen) > 1), *late]):
        parts = []
        if len(outcomes[job]) > 1:
            parts.append(f"{len(outcomes[job])} outcomes ({', '.join(outcomes[job])})")
        if late[job]:
            parts.append(
                f"ran again after its first outcome: {', '.join(late[job][:4])}"
                + (f" and {len(late[job]) - 4} more" if len(late[job]) > 4 else "")
            )
        problems.append(f"job {job} ({job_types.get(job, '?')}): {'; '.join(parts)}")
    return problems


def tasks_twice(log: list[Entry]) -> list[str]:
    ends: dict[str, list[str]] = defaultdict(list)
    for entry in log:
        if entry.subject.startswith("darkroom.task.") and _type(entry) in TASK_OUTCOMES:
            ends[entry.event.get("task_id") or ""].append(f"{_type(entry)[5:]}@{entry.seq}")
    return [f"task {task} ended {len(seen)} times: {', '.join(seen)}" for task, seen in ends.items() if len(seen) > 1]


def maintenance_twice(log: list[Entry], interval_s: float) -> list[str]:
    """One maintenance task per project per interval, whoever scheduled it and however often it restarted."""
    if interval_s <= 0:
        return []
    slots: dict[tuple[str, int], list[str]] = defaultdict(list)
    for entry in log:
        event = entry.event
        if _type(entry) == "task.requested" and event.get("task_type") == "maintenance":
            slot = math.floor(parse_iso(event["at"]).timestamp() / interval_s)
            slots[(event.get("project_id") or "", slot)].append(f"{event.get('task_id')}@{entry.seq}")
    return [
        f"project {project} got {len(tasks)} maintenance tasks in one {interval_s:g}s interval: {', '.join(tasks)}"
        for (project, _), tasks in slots.items()
        if len(tasks) > 1
    ]


def trashed_without_commit(log: list[Entry]) -> list[str]:
    """Only a commit's file_removal trashes, and only variants the user unticked. The job decides from
    the read model once it runs, so a variant counts as unticked if it was so when the attempt that
    trashed it started or when it was trashed (a tick in between may or may not have been seen)."""
    task_types: dict[str, str] = {}
    job_types: dict[str, str] = {}
    started: dict[str, int] = {}  # job -> its latest start (or its request)
    keep: dict[tuple[str, str], list[tuple[int, dict[str, bool]]]] = defaultdict(lambda: [(0, {})])
    problems = []
    for entry in log:
        event, kind = entry.event, _type(entry)
        photo = (event.get("project_id") or "", event.get("filename", ""))
        if kind == "task.requested":
            task_types[event.get("task_id") or ""] = event.get("task_type", "")
        elif kind in ("job.requested", "job.started") and entry.subject.startswith("darkroom.job."):
            job_types.setdefault(event.get("job_id") or "", event.get("job_type", ""))
            started[event.get("job_id") or ""] = entry.seq
        elif kind == "photo.keep_changed":
            flags = dict(keep[photo][-1][1])
            flags.update({k: v for k, v in event.items() if k.startswith("keep_") and v is not None})
            keep[photo].append((entry.seq, flags))
        elif kind == "photo.files_trashed":
            by = (task_types.get(event.get("task_id") or "", "?"), job_types.get(event.get("job_id") or "", "?"))
            if by != ("change_commit", "file_removal"):
                problems.append(f"{event.get('names')} trashed@{entry.seq} by {by[0]}/{by[1]}, not by a commit")
                continue
            history = keep[photo]
            at_start = next(f for seq, f in reversed(history) if seq <= started.get(event.get("job_id") or "", 0))
            for name in event.get("names", []):
                flag = f"keep_{kind_of(name)}"
                kept = at_start.get(flag) is not False and history[-1][1].get(flag) is not False
                if kind_of(name) is not None and kept:
                    problems.append(
                        f"{name} trashed@{entry.seq} by commit task {event.get('task_id')} while the user kept it"
                    )
    return problems


def _trash_name_of(name: str) -> re.Pattern:
    """`DSC01.JPG` goes to the trash as itself, or `DSC01 (2).JPG` when that is taken."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    return re.compile(re.escape(stem) + r"( \(\d+\))?" + (re.escape("." + ext) if dot else "") + "$")


def lost_originals(acknowledged: dict[tuple[str, str], str], disk: dict[str, Listing]) -> list[str]:
    """Every file the server acknowledged is in its project folder, or in its trash, unchanged."""
    problems = []
    for (folder, name), sha in sorted(acknowledged.items()):
        listing = disk.get(folder, Listing())
        if listing.files.get(name) == sha:
            continue
        pattern = _trash_name_of(name)
        if any(pattern.match(t) and digest == sha for t, digest in listing.trash.items()):
            continue
        where = "changed" if name in listing.files else "gone"
        problems.append(f"{folder}/{name}: {where}")
    return problems


def unlisted_originals(disk: dict[str, Listing], listed: dict[str, dict[str, list[str]] | None]) -> list[str]:
    """Every original in a project folder is one of the photos the API lists, with that file."""
    problems = []
    for folder, listing in sorted(disk.items()):
        photos = listed.get(folder)
        if photos is None:
            problems.append(f"{folder}: the API did not list its photos")
            continue
        problems += [
            f"{folder}/{name}: on disk, not among the photos the API lists"
            for name in sorted(listing.files)
            if name not in photos.get(basename(name), [])
        ]
    return problems


def unrecorded_trash(log: list[Entry], disk: dict[str, Listing]) -> list[str]:
    """Whatever is in a trash was put there with an event, so the trash lists it and it can come back."""
    folders = {e.event.get("project_id"): e.event.get("folder") for e in log if _type(e) == "project.created"}
    recorded: set[tuple[str, str]] = set()
    for entry in log:
        if _type(entry) == "photo.files_trashed":
            folder = folders.get(entry.event.get("project_id"), "?")
            recorded.update((folder, t) for t in entry.event.get("trash_names", []))
    return [
        f"{folder}/.trash/{name}: in the trash without a photo.files_trashed event (not listed, not restorable)"
        for folder, listing in sorted(disk.items())
        for name in sorted(listing.trash)
        if (folder, name) not in recorded
    ]


def unfinished_tasks(log: list[Entry], through: int | None = None) -> list[str]:
    """Tasks requested but not ended, as the log stood at `through` (the deadline; None: its end)."""
    requested: dict[str, str] = {}
    last: dict[str, str] = {}
    ended: set[str] = set()
    for entry in log:
        if through is not None and entry.seq > through:
            break
        task = entry.event.get("task_id")
        if not task:
            continue
        if _type(entry) == "task.requested":
            requested[task] = entry.event.get("task_type", "")
        if entry.subject.startswith(("darkroom.task.", "darkroom.job.")):
            last[task] = f"{_type(entry)}@{entry.seq}"
        if _type(entry) in TASK_OUTCOMES:
            ended.add(task)
    return [
        f"task {task} ({kind}) had not ended by the deadline; last: {last.get(task)}"
        for task, kind in requested.items()
        if task not in ended
    ]


def task_outcomes(log: list[Entry]) -> Counter:
    return Counter(_type(e)[5:] for e in log if e.subject.startswith("darkroom.task.") and _type(e) in TASK_OUTCOMES)


def recoveries(answered_at: list[float], log: list[Entry]) -> list[float | None]:
    """For each moment a restarted nats-server answered: seconds until a job taken after it completed
    (None: none did). A job finishing what it began before counts for nothing: work must flow again."""
    started: dict[tuple[str, int], float] = {}
    finished: list[tuple[float, float]] = []  # (began, completed)
    for entry in _job_events(log):
        event = entry.event
        key = (event.get("job_id") or "", event.get("attempt", 0))
        if _type(entry) == "job.started":
            started[key] = entry.at
        elif _type(entry) == "job.completed":
            began = started.get(key) or (
                parse_iso(event["started_at"]).timestamp() if event.get("started_at") else entry.at
            )
            finished.append((began, entry.at))
    out: list[float | None] = []
    for at in answered_at:
        after = min((done for began, done in finished if began >= at), default=None)
        out.append(None if after is None else after - at)
    return out


def _position(event_id: str) -> tuple[int, int]:
    seq, _, k = event_id.partition(".")
    return int(seq), int(k or 0)


def sse_problems(
    seen: list[tuple[str, str, str]], expected: list[tuple[str, str, str]], resets: int, stalls: int
) -> list[str]:
    """The live client saw every message the outbox held after its first id: once, in order, as stored.
    What it saw after the outbox was read (the log goes on: maintenance) is no one's business here."""
    problems = []
    if expected:
        end = _position(expected[-1][0])
        seen = [m for m in seen if _position(m[0]) <= end]
    counts = Counter(m[0] for m in seen)
    twice = [i for i, n in counts.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} messages arrived more than once, first {twice[0]}")
    backwards = [b[0] for a, b in zip(seen, seen[1:]) if _position(b[0]) <= _position(a[0]) and a[0] != b[0]]
    if backwards:
        problems.append(f"{len(backwards)} messages arrived out of order, first {backwards[0]}")
    wanted = {m[0]: m for m in expected}
    got = {m[0]: m for m in seen}
    missing = [i for i in wanted if i not in got]
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} messages never arrived, first {missing[0]}")
    extra = [i for i in got if i not in wanted]
    if extra:
        problems.append(f"{len(extra)} messages arrived that the outbox does not hold, first {extra[0]}")
    changed = [i for i in wanted if i in got and got[i] != wanted[i]]
    if changed:
        problems.append(f"{len(changed)} messages differ from the outbox, first {changed[0]}")
    if resets:
        problems.append(f"{resets} resets, though every resume point was still in the outbox")
    if stalls:
        problems.append(f"{stalls} times the stream was silent for 30 s (the contract: a line every 15 s)")
    return problems
