"""Retry: a failed or canceled task runs again as a new task of the same type and items, from the
step it stopped at, linked to it (`retry_of`, and the causation of its ending), once at a time.

The new task's id is derived from the old one's and from its latest retry, so two operators retrying
the same task at the same moment name the same new task and the log stores only one of them."""

from __future__ import annotations

from ..kernel import subjects
from ..kernel.bus import Bus
from ..kernel.events import PoisonEvent, TaskRequested
from ..kernel.messages import Conflict, Expect
from ..projector.apply import task_after
from ..projector.queries import ReadModel
from ..projector.views import JobView, TaskView
from .refused import Refused, caught_up

RETRYABLE = ("failed", "canceled")


def start_step(task: TaskView, jobs: list[JobView], latest: TaskView | None) -> int:
    """The step a retry of `task` starts at: the first one it ran that did not complete (pure).
    Refused when the task is not failed or canceled, or its latest retry runs or completed."""
    if task.status not in RETRYABLE:
        raise Refused(409, f"task {task.id} is {task.status}: only a failed or canceled task can be retried")
    if latest is not None and latest.status not in RETRYABLE:
        doing = "is running it again" if latest.status in ("queued", "running") else "ran it again"
        raise Refused(409, f"task {task.id} was retried: task {latest.id} {doing} ({latest.status})")
    completed = {job.step_index for job in jobs if job.status == "completed"}
    step = next((i for i in range(task.start_step, len(task.steps)) if i not in completed), None)
    if step is None:
        raise Refused(409, f"every step of task {task.id} completed before it was canceled: nothing to run again")
    return step


def retry_id(task_id: str, latest: str | None) -> str:
    """The id of the next retry of `task_id`: `<id>r1`, then `<id>r2` once `<id>r1` has ended (pure)."""
    prefix = f"{task_id}r"
    done = int(latest[len(prefix) :]) if latest and latest.startswith(prefix) and latest[len(prefix) :].isdigit() else 0
    return f"{prefix}{done + 1}"


async def retry(bus: Bus, read: ReadModel, task_id: str) -> tuple[TaskView, int]:
    """Store the retry's task.requested; the new task as it now stands and the event's sequence."""
    await caught_up(bus, read)  # what was stored before the request counts
    task = await read.task(task_id)
    if task is None:
        raise Refused(404, f"task {task_id!r} not found")
    latest = await read.task(task.retried_by) if task.retried_by else None
    step = start_step(task, await read.jobs_of(task.id), latest)
    project = await read.project(task.project_id) if task.project_id else None
    if task.project_id and project is None:
        raise Refused(409, f"task {task.id} worked on a project that is gone")
    requested, ended = await _request_and_ending(bus, task)
    event = TaskRequested(
        task_id=retry_id(task.id, task.retried_by),
        project_id=task.project_id,
        folder=project.folder if project else task.folder,
        causation_id=ended,
        source="user",
        task_type=task.type,
        label=task.label,
        user_relevant=task.user_relevant,
        steps=list(task.steps),
        items=list(requested.items),
        params=requested.params,
        retry_of=task.id,
        start_step=step,
    )
    try:  # a task id is used once: a retry made meanwhile by someone else took it
        seq = await bus.publish(event, expect=Expect(subjects.task_events(task.project_id, event.task_id or ""), 0))
    except Conflict:
        raise Refused(409, f"task {task.id} was retried meanwhile, as task {event.task_id}") from None
    return task_after(event, task), seq


async def _request_and_ending(bus: Bus, task: TaskView) -> tuple[TaskRequested, str | None]:
    """The task's own task.requested (its items), and the id of its newest task event (how it ended)."""
    prefix = subjects.task_prefix(task.project_id, task.id)
    stored, newest = await bus.last_on(f"{prefix}.requested"), await bus.last_on(f"{prefix}.>")
    try:
        requested = bus.codec.decode(stored.data) if stored is not None else None
        ended = bus.codec.decode(newest.data).id if newest is not None else None
    except PoisonEvent as exc:
        raise Refused(409, f"task {task.id} cannot be read from the log: {exc}") from None
    if not isinstance(requested, TaskRequested):
        raise Refused(409, f"task {task.id} has no task.requested in the log")
    return requested, ended
