"""Whether a delivered job may still run: its task's history decides, not the delivery.

A job can come again long after it ended: a redelivery, a request stored again by an orchestrator
restarted past the duplicate window, a re-dispatch, a message on whatever subject carries jobs. An
outcome is final, so the newest event of the job's task tells whether this one is over, leaving out
the requests (the delivered one is itself the newest of them): one direct get per job (two at once
for a first step, whose task's newest is a task event).
"""

from __future__ import annotations

import asyncio

from ..kernel import subjects
from ..kernel.bus import Bus
from ..kernel.events import (
    Event,
    JobCanceled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobRequested,
    PoisonEvent,
    TaskCanceled,
    TaskCompleted,
    TaskFailed,
)

OUTCOMES = (JobCompleted, JobFailed, JobCanceled)
ENDINGS = (TaskCompleted, TaskFailed, TaskCanceled)


def over(job: JobRequested, newest: Event | None) -> bool | None:
    """Whether `newest`, the newest event of the job's task or of its jobs, shows the job over: True
    (an outcome of it, a later step, the task ended), False (it is open), None (a task event that says
    neither: the newest job event will). Nothing readable proves nothing: the job runs."""
    if isinstance(newest, ENDINGS):
        return True
    if isinstance(newest, JobEvent):
        return newest.step_index > job.step_index or (
            newest.step_index == job.step_index and isinstance(newest, OUTCOMES)
        )
    return None if newest is not None else False


async def is_over(bus: Bus, job: JobRequested) -> bool:
    """Read the task's newest event but a request (and its jobs' newest, when that is a task event) and judge."""
    task_id = job.task_id or ""
    task, jobs = subjects.task_history(job.project_id, task_id), subjects.job_events(job.project_id, task_id)
    # Before a first step's outcome the task's newest is a task event, so its jobs' newest is needed too.
    reads = [task, jobs] if job.step_index == 0 else [task]
    found = await asyncio.gather(*(_newest(bus, subject) for subject in reads))
    verdict = over(job, found[0])
    if verdict is None:
        verdict = over(job, found[1] if len(found) > 1 else await _newest(bus, jobs))
    return bool(verdict)


async def _newest(bus: Bus, subject: str) -> Event | None:
    stored = await bus.last_on(subject)
    if stored is None:
        return None
    try:
        return bus.codec.decode(stored.data)
    except PoisonEvent:
        return None
