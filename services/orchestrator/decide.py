"""What a task needs next, given everything stored about it (pure, level-triggered).

Deciding from the whole state rather than from the triggering event makes every decision
safe to repeat: a duplicate completion finds the task already moved on and asks for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernel import subjects
from ..kernel.bus import Expect
from ..kernel.definitions import is_maintenance, lane_for
from ..kernel.events import (
    Event,
    JobCanceled,
    JobRequested,
    TaskCanceled,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
)
from ..kernel.ids import job_id
from .state import TaskState


@dataclass(frozen=True)
class Emit:
    """Store an event on its own subject, guarded by `expect` and deduplicated by `msg_id`."""

    event: Event
    msg_id: str
    expect: Expect | None


@dataclass(frozen=True)
class Dispatch:
    """Put a copy of a job.requested on its lane for the workers."""

    job: JobRequested


Action = Emit | Dispatch


def decide(state: TaskState, threshold: int, redispatch: bool = False) -> list[Action]:
    if state.terminal:
        return []
    if state.status == "queued":
        if state.cancel_requested:
            return [_finish(state, TaskCanceled(step_index=None))]
        started = _emit_task(state, TaskStarted(), "started")
        return [started, *_request(state, 0, threshold)] if state.requested_step < 0 else [started]
    current = state.requested_step
    if current < 0:
        if state.cancel_requested:
            return [_finish(state, TaskCanceled(step_index=None))]
        return _request(state, 0, threshold)
    if current not in state.finished_steps:
        if state.cancel_requested and state.running_step != current:
            # Queued, or waiting to be retried: it is canceled now rather than when a worker gets to
            # it (one that does finds its task canceled, and reports the same job.canceled, a duplicate).
            return [_cancel_queued(state, _job(state, current, threshold)),
                    _finish(state, TaskCanceled(step_index=current))]
        # The step's job is out; only a suspected lost dispatch copy needs doing again.
        return [Dispatch(_job(state, current, threshold))] if redispatch else []
    if state.failed_step == current:
        return [_finish(state, TaskFailed(error=state.error or "a step failed", step_index=current))]
    if state.cancel_requested:
        return [_finish(state, TaskCanceled(step_index=current))]
    if current + 1 < len(state.steps):
        return _request(state, current + 1, threshold)
    return [_finish(state, TaskCompleted())]


def _request(state: TaskState, step_index: int, threshold: int) -> list[Action]:
    job = _job(state, step_index, threshold)
    guard = Expect(f"{subjects.job_prefix(state.project_id, state.task_id)}.requested", state.last_requested_seq)
    return [Emit(job, f"job:{job.job_id}:requested", guard), Dispatch(job)]


def _job(state: TaskState, step_index: int, threshold: int) -> JobRequested:
    step = state.steps[step_index]
    return JobRequested(
        project_id=state.project_id,
        task_id=state.task_id,
        job_id=job_id(state.task_id, step_index),
        source=state.source,  # type: ignore[arg-type]
        task_type=state.task_type,
        job_type=step.type,
        step_index=step_index,
        priority=step.priority,
        lane=lane_for(step.priority, threshold, is_maintenance(state.user_relevant, state.source)),
        items=list(state.items) if step_index == 0 else [],
        folder=state.folder,
    )


def _cancel_queued(state: TaskState, job: JobRequested) -> Emit:
    canceled = JobCanceled(project_id=job.project_id, task_id=job.task_id, job_id=job.job_id, source=job.source,
                           task_type=job.task_type, job_type=job.job_type, step_index=job.step_index)
    return Emit(canceled, f"job:{job.job_id}:canceled", None)  # the worker's msg id for the same fact


def _emit_task(state: TaskState, event: Event, name: str) -> Emit:
    event.project_id = state.project_id
    event.task_id = state.task_id
    event.source = state.source  # type: ignore[assignment]
    guard = Expect(f"{subjects.task_prefix(state.project_id, state.task_id)}.>", state.last_task_seq)
    return Emit(event, f"task:{state.task_id}:{name}", guard)


def _finish(state: TaskState, event: Event) -> Emit:
    return _emit_task(state, event, "finished")


def lost_dispatches(states: list[TaskState], dispatched: dict[str, int], lane_starts: dict[str, int],
                    threshold: int) -> list[JobRequested]:
    """Jobs requested but unfinished whose every dispatch copy lies before their lane consumer's
    start: a lane consumer recreated after the log's end will never deliver them."""
    lost = []
    for state in states:
        step = state.requested_step
        if state.terminal or step < 0 or step in state.finished_steps:
            continue
        job = _job(state, step, threshold)
        start = lane_starts.get(job.lane)
        if start is not None and dispatched.get(job.job_id or "", 0) < start:
            lost.append(job)
    return lost
