"""A task as the orchestrator sees it, folded from the task's own events (pure)."""

from __future__ import annotations

from typing import Any

import msgspec

from ..kernel.events import (
    Event,
    JobCanceled,
    JobCompleted,
    JobFailed,
    JobRequested,
    JobRetrying,
    JobStarted,
    Step,
    TaskCanceled,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskParams,
    TaskRequested,
    TaskStarted,
)
from ..kernel.vocabulary import TERMINAL, Source

replace = msgspec.structs.replace


class TaskState(msgspec.Struct, frozen=True, gc=False):
    """A value: each event makes a new one in one copy (a Struct's is far cheaper than a dataclass's)."""

    task_id: str
    project_id: str | None
    task_type: str
    label: str
    user_relevant: bool
    source: Source
    folder: str | None
    steps: tuple[Step, ...]
    items: tuple[str, ...]
    start_step: int = 0  # the first step it runs (a retry starts where its task stopped)
    params: TaskParams | None = None
    status: str = "queued"
    cancel_requested: bool = False
    requested_step: int = -1  # the highest step whose job.requested is stored
    # The step whose job is running (started, and not backed off for a retry since); the orchestrator
    # does not consume job.started and job.retrying, so a cancel reads them from the log.
    running_step: int = -1
    finished_steps: frozenset[int] = frozenset()
    failed_step: int | None = None
    error: str | None = None
    last_task_seq: int = 0  # newest stream sequence under darkroom.task.<p>.<t>.>
    last_requested_seq: int = 0  # newest stream sequence on darkroom.job.<p>.<t>.requested.>
    last_history_seq: int = 0  # newest stream sequence anywhere in the task's history, unreadable ones too
    seen_seq: int = 0  # newest sequence folded in: older redeliveries change nothing

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def start(event: TaskRequested, seq: int) -> TaskState:
    return TaskState(
        task_id=event.task_id or "",
        project_id=event.project_id,
        task_type=event.task_type,
        label=event.label,
        user_relevant=event.user_relevant,
        source=event.source,
        folder=event.folder,
        steps=tuple(event.steps),
        items=tuple(event.items),
        start_step=event.start_step,
        params=event.params,
        last_task_seq=seq,
        last_history_seq=seq,
        seen_seq=seq,
    )


def evolve(state: TaskState, event: Event, seq: int) -> TaskState:
    """How one consumed event changes a task; events at or below `seen_seq` are already in it."""
    if seq <= state.seen_seq:
        return state
    return _fold(state, event, seq, seq)


def record(state: TaskState, event: Event, seq: int) -> TaskState:
    """Fold in an event this orchestrator just stored itself (it does not consume its own output,
    so `seen_seq` stays where the consumed events left it)."""
    return _fold(state, event, seq, state.seen_seq)


def _fold(state: TaskState, event: Event, seq: int, seen_seq: int) -> TaskState:
    changes: dict[str, Any]
    match event:  # the most frequent first
        case JobCompleted() | JobCanceled():
            changes = {"finished_steps": state.finished_steps | {event.step_index}}
        case JobRequested():  # a task is running from its first job.requested
            changes = {
                "requested_step": max(state.requested_step, event.step_index),
                "last_requested_seq": seq,
                "status": "running" if state.status == "queued" else state.status,
            }
        case TaskRequested():
            changes = {"last_task_seq": seq}
        case TaskCompleted():
            changes = {"status": "completed", "last_task_seq": seq}
        case JobStarted():
            changes = {"running_step": event.step_index}
        case JobRetrying() if event.step_index == state.running_step:
            changes = {"running_step": -1}
        case JobFailed():
            changes = {
                "finished_steps": state.finished_steps | {event.step_index},
                "failed_step": event.step_index,
                "error": event.error,
            }
        case TaskStarted():
            changes = {"status": "running", "last_task_seq": seq}
        case TaskCancelRequested():
            changes = {"cancel_requested": True, "last_task_seq": seq}
        case TaskFailed():
            changes = {"status": "failed", "last_task_seq": seq}
        case TaskCanceled():
            changes = {"status": "canceled", "last_task_seq": seq}
        case _:
            changes = {}
    return replace(state, last_history_seq=max(state.last_history_seq, seq), seen_seq=seen_seq, **changes)


Newest = tuple[int, Event | None]  # a subject's newest stream sequence and event (None: unreadable)


def refreshed(state: TaskState, task: Newest | None, request: Newest | None) -> TaskState | None:
    """The task once another orchestrator's writes are folded in, from the newest event on the task's
    subjects (`task`) and on its job.requested subjects (`request`): what a refused decision needs to
    decide again, without reading the task's history. None when those two cannot tell (an unreadable
    event, or another than a request on a request's subject; a cancel newest on a task this view still
    has queued): then the history must be read."""
    if task is None or task[1] is None:
        return None
    seq, event = task
    match event:
        case TaskCompleted() | TaskFailed() | TaskCanceled() | TaskStarted():
            state = record(state, event, seq)
        case TaskCancelRequested() if state.status != "queued":
            state = record(state, event, seq)
        case TaskRequested():
            state = replace(state, last_task_seq=seq)
        case _:
            return None
    if request is not None:
        at, newest = request
        if not isinstance(newest, JobRequested):
            return None
        state = record(state, newest, at)
    if state.requested_step < state.start_step and not state.terminal:
        return None  # its first step's guard is the whole history, which only reading it tells
    return state
