"""What a task needs next, given everything stored about it (pure, level-triggered).

Deciding from the whole state rather than from the triggering event makes every decision
safe to repeat: a duplicate completion finds the task already moved on and asks for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..kernel import subjects
from ..kernel.definitions import is_maintenance, lane_for
from ..kernel.events import (
    Event,
    JobCanceled,
    JobCompleted,
    JobFailed,
    JobRequested,
    TaskCanceled,
    TaskCompleted,
    TaskFailed,
)
from ..kernel.ids import job_id
from ..kernel.messages import Expect
from .state import TaskState


@dataclass(frozen=True)
class Emit:
    """Store an event on its own subject, guarded by `expect` and deduplicated by `msg_id`."""

    event: Event
    msg_id: str
    expect: Expect | None


def decide(state: TaskState, threshold: int) -> list[Emit]:
    """What to store next; a task is running from its first job.requested (it stores no task.started)."""
    if state.terminal:
        return []
    current = state.requested_step
    if current < 0:
        first = state.start_step
        if not 0 <= first < len(state.steps):
            return [
                _finish(
                    state,
                    TaskFailed(
                        error=f"start step {first} is not one of its {len(state.steps)} steps", step_index=first
                    ),
                )
            ]
        if state.cancel_requested:
            return [_finish(state, TaskCanceled(step_index=None))]
        return _request(state, first, threshold)
    if current not in state.finished_steps:
        if state.cancel_requested and state.running_step != current:
            # Queued, or waiting to be retried: it is canceled now rather than when a worker gets to
            # it (one that does finds its job over and leaves it).
            return [
                _cancel_queued(state, _job(state, current, threshold)),
                _finish(state, TaskCanceled(step_index=current)),
            ]
        return []  # the step's job is out
    if state.failed_step == current:
        return [_finish(state, TaskFailed(error=state.error or "a step failed", step_index=current))]
    if state.cancel_requested:
        return [_finish(state, TaskCanceled(step_index=current))]
    if current + 1 < len(state.steps):
        return _request(state, current + 1, threshold)
    return [_finish(state, TaskCompleted())]


def _request(state: TaskState, step_index: int, threshold: int) -> list[Emit]:
    """The step's job.requested: stored with its lane in its subject, it is the work the lane's workers take."""
    job = _job(state, step_index, threshold)
    if step_index == state.start_step:
        # Nothing may have happened to the task but what the state holds: a task canceled, or
        # already under way, before this decision (one made from a stale or cold view) gets no job.
        guard = Expect(subjects.task_events(state.project_id, state.task_id), state.last_history_seq)
    else:
        guard = Expect(subjects.requests(state.project_id, state.task_id), state.last_requested_seq)
    return [Emit(job, f"job:{job.job_id}:requested", guard)]


def _job(state: TaskState, step_index: int, threshold: int) -> JobRequested:
    step = state.steps[step_index]
    return JobRequested(
        project_id=state.project_id,
        task_id=state.task_id,
        job_id=job_id(state.task_id, step_index),
        source=state.source,
        task_type=state.task_type,
        job_type=step.type,
        step_index=step_index,
        priority=step.priority,
        lane=lane_for(step.priority, threshold, is_maintenance(state.user_relevant, state.source)),
        items=list(state.items) if step_index == 0 else [],
        folder=state.folder,
        params=state.params,
    )


def _cancel_queued(state: TaskState, job: JobRequested) -> Emit:
    canceled = JobCanceled(
        project_id=job.project_id,
        task_id=job.task_id,
        job_id=job.job_id,
        source=job.source,
        task_type=job.task_type,
        job_type=job.job_type,
        step_index=job.step_index,
    )
    # The same guard as the task.canceled after it: both are stored, or neither (a stale view).
    return Emit(canceled, f"job:{job.job_id}:canceled", _task_guard(state))


def _emit_task(state: TaskState, event: Event, name: str) -> Emit:
    event.project_id = state.project_id
    event.task_id = state.task_id
    event.source = state.source
    return Emit(event, f"task:{state.task_id}:{name}", _task_guard(state))


def _task_guard(state: TaskState) -> Expect:
    return Expect(subjects.task_subject(state.project_id, state.task_id, ">"), state.last_task_seq)


def _finish(state: TaskState, event: Event) -> Emit:
    return _emit_task(state, event, "finished")


@dataclass
class Request:
    """A job.requested found in the log; `guard_seq`: its sequence, when it was stored on today's subjects
    (0: before CONTRACT §7.1, on darkroom.job.<p>.<t>.requested, which a guard on the requests' subjects
    does not see)."""

    job: JobRequested
    seq: int
    guard_seq: int


class OpenRequests:
    """The requests found in the log that are still open (no outcome, task not ended), folded one
    message at a time: a task has at most one open request (its steps run in order), so what is
    held is bounded by the tasks under way, however much of the log is read (pure)."""

    def __init__(self) -> None:
        self.by_task: dict[str, Request] = {}

    def add(self, seq: int, subject: str, event: Event) -> None:
        task_id = event.task_id or ""
        request = self.by_task.get(task_id)
        if subjects.is_dispatch(subject):
            return  # a copy of a request stored before §7.1: its request is in the log
        if isinstance(event, JobRequested):
            today = subject.startswith(f"{subjects.job_prefix(event.project_id, task_id)}.requested.")
            self.by_task[task_id] = Request(event, seq, seq if today else 0)
        elif isinstance(event, (JobCompleted, JobFailed, JobCanceled)):
            if request is not None and request.job.job_id == event.job_id:
                del self.by_task[task_id]
        elif isinstance(event, (TaskCompleted, TaskFailed, TaskCanceled)):
            self.by_task.pop(task_id, None)


def lost_dispatches(requests: Iterable[Request], lane_starts: dict[str, int]) -> list[Request]:
    """Open requests no worker will ever be handed: stored before a lane consumer recreated after them
    (or before the lanes took requests from today's subjects)."""
    return [r for r in requests if r.seq < lane_starts.get(r.job.lane, 0)]
