"""The one place that knows subject names (CONTRACT §4)."""

from __future__ import annotations

from .events import (
    BasenameClaimed,
    DeadLetterEvent,
    Event,
    FolderRefused,
    JobEvent,
    JobRequested,
    LaneEvent,
    PhotoEvent,
    type_name,
)
from .photos import name_key, photo_key

STREAM = "DARKROOM"
STREAM_INFO = f"$JS.API.STREAM.INFO.{STREAM}"  # JetStream's API: the stream's config and state
DIRECT_GET = f"$JS.API.DIRECT.GET.{STREAM}"  # JetStream's API: a stored message, read by any server
ROOT = "darkroom"
ALL = f"{ROOT}.>"
NO_PROJECT = "_"


def project_token(project_id: str | None) -> str:
    return project_id or NO_PROJECT


def task_prefix(project_id: str | None, task_id: str) -> str:
    return f"{ROOT}.task.{project_token(project_id)}.{task_id}"


def job_prefix(project_id: str | None, task_id: str) -> str:
    return f"{ROOT}.job.{project_token(project_id)}.{task_id}"


def task_subject(project_id: str | None, task_id: str, name: str) -> str:
    """One event of a task (`requested`…), or every one (`>`)."""
    return f"{task_prefix(project_id, task_id)}.{name}"


def job_subject(project_id: str | None, task_id: str, name: str) -> str:
    """One event of a task's jobs (`requested`…), or every one (`>`)."""
    return f"{job_prefix(project_id, task_id)}.{name}"


def task_anywhere(task_id: str, name: str) -> str:
    """One event of a task whatever its project: for who knows the task id alone."""
    return f"{ROOT}.task.*.{task_id}.{name}"


def task_events(project_id: str | None, task_id: str) -> str:
    """Every event of a task and of its jobs: the whole history of one piece of work."""
    return f"{ROOT}.*.{project_token(project_id)}.{task_id}.>"


def basename_prefix(filename: str) -> str:
    """Every claim on one basename, whatever the project."""
    return f"{ROOT}.basename.{name_key(filename)}"


def any_task(name: str) -> str:
    """One event of every task, e.g. `any_task("cancel_requested")`."""
    return f"{ROOT}.task.*.*.{name}"


def any_project(name: str) -> str:
    """One event of every project, e.g. `any_project("created")`."""
    return f"{ROOT}.project.*.{name}"


def project_events(project_id: str) -> str:
    """A project's own events (created, renamed…), not its photos' or tasks'."""
    return f"{ROOT}.project.{project_id}.>"


def project_history(project: str, job_events: tuple[str, ...]) -> list[str]:
    """A project's own events, its photos', its tasks', and these events of its jobs."""
    return [f"{ROOT}.{kind}.{project}.>" for kind in ("project", "photo", "task")] + [
        f"{ROOT}.job.{project}.*.{name}" for name in job_events
    ]


def task_of(subject: str) -> str:
    """The task id in a task or job subject (`darkroom.task.<project_id>.<task_id>.<event>`)."""
    return subject.split(".")[3]


def project_token_of(subject: str) -> str:
    """The project token in a task, job, photo or project subject (`_`: no project)."""
    return subject.split(".")[2]


def any_job(name: str) -> str:
    """One event of every job, e.g. `any_job("completed")`."""
    return f"{ROOT}.job.*.*.{name}"


def lane_consumer(lane: str) -> str:
    """The durable consumer every worker pulls a lane's jobs from."""
    return f"lane_{lane}"


def requests(project_id: str | None, task_id: str) -> str:
    """Every job.requested of a task, whatever its lane (CONTRACT §7.1)."""
    return f"{job_prefix(project_id, task_id)}.requested.>"


def lane_filter(lane: str) -> str:
    """The work of one lane: the job.requested events stored with the lane in their subject."""
    return f"{ROOT}.job.*.*.requested.{lane}.>"


REQUESTS = (f"{ROOT}.job.*.*.requested.>", f"{ROOT}.job.*.*.requested")  # every job.requested: today's, and
# one stored before §7.1 (on darkroom.job.<p>.<t>.requested, with a copy on darkroom.dispatch.<lane>.<job_type>)


def job_events(project_id: str | None, task_id: str) -> str:
    """Every event of a task's jobs but the requests: each on a subject of five tokens."""
    return f"{job_prefix(project_id, task_id)}.*"


def task_history(project_id: str | None, task_id: str) -> str:
    """Every event of a task and of its jobs but the requests."""
    return f"{ROOT}.*.{project_token(project_id)}.{task_id}.*"


def next_messages(consumer: str) -> str:
    """Where a pull request for a consumer of the stream goes (JetStream's API)."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{consumer}"


def stream_snapshot(stream: str) -> str:
    """JetStream's API: a stream's snapshot, streamed in chunks to the request's inbox."""
    return f"$JS.API.STREAM.SNAPSHOT.{stream}"


def stream_restore(stream: str) -> str:
    """JetStream's API: a stream made from a snapshot's chunks."""
    return f"$JS.API.STREAM.RESTORE.{stream}"


def consumer_list(stream: str) -> str:
    """JetStream's API: a stream's consumers, a page at a time."""
    return f"$JS.API.CONSUMER.LIST.{stream}"


def consumer_create(stream: str, name: str) -> str:
    """JetStream's API: a durable consumer made, or its mutable fields updated."""
    return f"$JS.API.CONSUMER.CREATE.{stream}.{name}"


def cancel_requests() -> str:
    return any_task("cancel_requested")


def lane_events(lane: str) -> str:
    """Every pause and resume of one lane: its newest is the lane's state."""
    return f"{ROOT}.lane.{lane}.*"


LANE_EVENTS = f"{ROOT}.lane.>"  # every lane's pauses and resumes


def dead_letter_events(seq: int) -> str:
    """What happened to the message set aside at `seq`: recorded, then discarded or applied."""
    return f"{ROOT}.dead_letter.{seq}.*"


DEAD_LETTERS = f"{ROOT}.dead_letter."  # every dead letter subject begins so
DEAD_LETTERS_RECORDED = f"{ROOT}.dead_letter.*.recorded"


def dead_letter_of(subject: str, name: str) -> int | None:
    """The sequence a dead letter's `name` event names (`darkroom.dead_letter.<seq>.<name>`); None for any
    other subject."""
    if not subject.startswith(DEAD_LETTERS) or not subject.endswith(f".{name}"):
        return None
    token = subject.split(".")[2]
    return int(token) if token.isdigit() else None


def subject_for(event: Event) -> str:
    """Where an event lives in the log: its aggregate prefix plus the event name."""
    kind, _, name = type_name(type(event)).partition(".")
    if kind == "task":
        return f"{task_prefix(event.project_id, _required(event.task_id, event))}.{name}"
    if kind == "job":
        assert isinstance(event, JobEvent)
        prefix = job_prefix(event.project_id, _required(event.task_id, event))
        if isinstance(event, JobRequested):
            return f"{prefix}.{name}.{event.lane}.{event.job_type}"
        return f"{prefix}.{name}"
    if kind == "project":
        return f"{ROOT}.project.{_required(event.project_id, event)}.{name}"
    if kind == "photo":
        assert isinstance(event, PhotoEvent)
        return f"{ROOT}.photo.{_required(event.project_id, event)}.{photo_key(event.project_id, event.filename)}.{name}"
    if kind == "basename":
        assert isinstance(event, BasenameClaimed)
        return f"{basename_prefix(event.filename)}.{name}"
    if kind == "lane":
        assert isinstance(event, LaneEvent)
        return f"{ROOT}.lane.{event.lane}.{name}"
    if kind == "dead_letter":
        assert isinstance(event, DeadLetterEvent)
        return f"{ROOT}.dead_letter.{event.seq}.{name}"
    if kind == "folder":
        assert isinstance(event, FolderRefused)
        return f"{ROOT}.folder.{name_key(event.folder)}.{name}"
    raise ValueError(f"no subject for event type {type_name(type(event))}")


def _required(value: str | None, event: Event) -> str:
    if not value:
        raise ValueError(f"{type_name(type(event))} is missing an id its subject needs")
    return value


DISPATCH = f"{ROOT}.dispatch."  # where a log written before CONTRACT §7.1 kept the workers' copies of job.requested


def is_dispatch(subject: str) -> bool:
    return subject.startswith(DISPATCH)


def photo_subject(project_id: str, filename: str) -> str:
    """Every event of one photo: what an auditor filters on."""
    return f"{ROOT}.photo.{project_id}.{photo_key(project_id, filename)}.>"
