"""Read-model rows as the API and SSE show them: defined once, used by projector, API and UI."""

from __future__ import annotations

import msgspec

from ..kernel.events import Step


class TaskView(msgspec.Struct, kw_only=True):
    id: str
    type: str
    label: str
    user_relevant: bool
    source: str
    project_id: str | None
    folder: str | None
    status: str
    step_index: int
    steps: list[Step]
    cancel_requested: bool = False
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    updated_at: str
    maintenance: bool = False


class JobView(msgspec.Struct, kw_only=True):
    id: str
    task_id: str
    task_type: str
    source: str
    type: str
    project_id: str | None
    folder: str | None
    priority: int
    lane: str
    status: str
    step_index: int
    attempts: int = 0
    progress_done: int = 0
    progress_total: int = 0
    error: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str
    maintenance: bool = False


class DeadLetter(msgspec.Struct):
    seq: int
    subject: str
    reason: str
    at: str
