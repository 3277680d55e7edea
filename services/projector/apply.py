"""How each event changes the read models (pure): rows in, rows and SSE messages out."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from ..kernel.definitions import is_maintenance
from ..kernel.events import (
    Event,
    JobCanceled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgress,
    JobRequested,
    JobRetrying,
    JobStarted,
    TaskCanceled,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskRequested,
    TaskStarted,
)
from .views import JobView, TaskView

replace = msgspec.structs.replace
TERMINAL = ("completed", "failed", "canceled")


@dataclass
class Message:
    """One SSE message caused by an event; `k` orders several caused by the same event."""

    event: str
    data: msgspec.Struct
    project_id: str | None
    folder: str | None
    maintenance: bool


@dataclass
class Rows:
    """The rows a batch touches, loaded once and written once."""

    tasks: dict[str, TaskView | None] = field(default_factory=dict)
    jobs: dict[str, JobView | None] = field(default_factory=dict)
    dirty_tasks: set[str] = field(default_factory=set)
    dirty_jobs: set[str] = field(default_factory=set)

    def put_task(self, task: TaskView) -> TaskView:
        self.tasks[task.id] = task
        self.dirty_tasks.add(task.id)
        return task

    def put_job(self, job: JobView) -> JobView:
        self.jobs[job.id] = job
        self.dirty_jobs.add(job.id)
        return job


def needs(event: Event) -> tuple[set[str], set[str]]:
    """Which task and job rows applying this event reads."""
    tasks = {event.task_id} if event.task_id else set()
    jobs = {event.job_id} if isinstance(event, JobEvent) and event.job_id else set()
    return tasks, jobs


def apply(rows: Rows, event: Event) -> list[Message]:
    if isinstance(event, JobEvent):
        return _apply_job(rows, event)
    if event.type.startswith("task."):
        return _apply_task(rows, event)
    return []


def _task_message(task: TaskView) -> Message:
    return Message("task_update", task, task.project_id, task.folder, task.maintenance)


def _job_message(job: JobView) -> Message:
    return Message("job_update", job, job.project_id, job.folder, job.maintenance)


def _apply_task(rows: Rows, event: Event) -> list[Message]:
    task = rows.tasks.get(event.task_id or "")
    at = event.at
    if isinstance(event, TaskRequested):
        if task is not None:
            return []
        task = TaskView(
            id=event.task_id or "", type=event.task_type, label=event.label, user_relevant=event.user_relevant,
            source=event.source, project_id=event.project_id, folder=event.folder, status="queued", step_index=0,
            steps=list(event.steps), created_at=at, updated_at=at,
            maintenance=is_maintenance(event.user_relevant, event.source))
        return [_task_message(rows.put_task(task))]
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
    return [_task_message(rows.put_task(replace(task, updated_at=at)))]


def _apply_job(rows: Rows, event: JobEvent) -> list[Message]:
    job = rows.jobs.get(event.job_id or "")
    at = event.at
    messages: list[Message] = []
    if isinstance(event, JobRequested):
        if job is not None:
            return []
        task = rows.tasks.get(event.task_id or "")
        job = JobView(
            id=event.job_id or "", task_id=event.task_id or "", task_type=event.task_type, source=event.source,
            type=event.job_type, project_id=event.project_id, folder=event.folder, priority=event.priority,
            lane=event.lane, status="queued", step_index=event.step_index, progress_total=len(event.items),
            created_at=at, updated_at=at, maintenance=task.maintenance if task else event.source == "maintenance")
        messages.append(_job_message(rows.put_job(job)))
        if task is not None and task.step_index != event.step_index:
            messages.append(_task_message(rows.put_task(replace(task, step_index=event.step_index, updated_at=at))))
        return messages
    if job is None or job.status in TERMINAL:
        return []  # a finished job stays finished: late duplicates of a redelivery change nothing
    match event:
        case JobStarted():
            job = replace(job, status="running", attempts=event.attempt, started_at=at, finished_at=None)
        case JobProgress():
            job = replace(job, progress_done=event.done, progress_total=event.total)
        case JobRetrying():
            job = replace(job, status="retrying", attempts=event.attempt, error=event.error)
        case JobCompleted():
            job = replace(job, status="completed", attempts=event.attempt, finished_at=at, error=None)
        case JobFailed():
            job = replace(job, status="failed", attempts=max(job.attempts, event.attempt), error=event.error,
                          finished_at=at)
        case JobCanceled():
            job = replace(job, status="canceled", finished_at=at)
        case _:
            return []
    return [_job_message(rows.put_job(replace(job, updated_at=at)))]
