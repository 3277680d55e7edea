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
    TaskStarted,
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


@dataclass(frozen=True)
class Dispatch:
    """Put a copy of a job.requested on its lane for the workers, once that job.requested is stored:
    a copy never goes out for a request the log refused."""

    job: JobRequested


Action = Emit | Dispatch


def decide(state: TaskState, threshold: int) -> list[Action]:
    if state.terminal:
        return []
    first = state.start_step
    if state.requested_step < 0 and not 0 <= first < len(state.steps):
        return [
            _finish(
                state,
                TaskFailed(error=f"start step {first} is not one of its {len(state.steps)} steps", step_index=first),
            )
        ]
    if state.status == "queued":
        if state.cancel_requested:
            return [_finish(state, TaskCanceled(step_index=None))]
        started = _emit_task(state, TaskStarted(), "started")
        return [*_request(state, first, threshold), started] if state.requested_step < 0 else [started]
    current = state.requested_step
    if current < 0:
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


def _request(state: TaskState, step_index: int, threshold: int) -> list[Action]:
    job = _job(state, step_index, threshold)
    if step_index == state.start_step:
        # Nothing may have happened to the task but what the state holds: a task canceled, or
        # already under way, before this decision (one made from a stale or cold view) gets no job.
        guard = Expect(subjects.task_events(state.project_id, state.task_id), state.last_task_seq)
    else:
        guard = Expect(requested_subject(job), state.last_requested_seq)
    return [Emit(job, f"job:{job.job_id}:requested", guard), Dispatch(job)]


def requested_subject(job: JobRequested) -> str:
    return subjects.job_subject(job.project_id, job.task_id or "", "requested")


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
    """A job.requested found in the log, with its newest dispatch copy's sequence (0: none seen)."""

    job: JobRequested
    seq: int
    copied_at: int = 0


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
            if request is not None and request.job.job_id == event.job_id:
                request.copied_at = seq
        elif isinstance(event, JobRequested):
            self.by_task[task_id] = Request(event, seq)
        elif isinstance(event, (JobCompleted, JobFailed, JobCanceled)):
            if request is not None and request.job.job_id == event.job_id:
                del self.by_task[task_id]
        elif isinstance(event, (TaskCompleted, TaskFailed, TaskCanceled)):
            self.by_task.pop(task_id, None)


def lost_dispatches(requests: Iterable[Request], lane_starts: dict[str, int]) -> list[Request]:
    """Open requests no worker will ever be handed: no copy was stored after the request (its
    orchestrator stopped in between), or every copy lies before a lane consumer recreated after it."""
    return [r for r in requests if r.copied_at < r.seq or r.copied_at < lane_starts.get(r.job.lane, 0)]
