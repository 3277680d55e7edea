"""services/worker/fence.py: whether a delivered job is over, from the newest event of its task."""

from __future__ import annotations

import pytest

from darkroom.kernel.events import (
    JobCanceled,
    JobCompleted,
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
from darkroom.worker.fence import over

P, T = "P01", "T01"


def job(cls, step: int, **fields):
    return cls(
        project_id=P,
        task_id=T,
        job_id=f"{T}-{step}",
        source="user",
        task_type="change_commit",
        job_type="file_removal",
        step_index=step,
        **fields,
    )


def task(cls, **fields):
    return cls(project_id=P, task_id=T, source="user", **fields)


DELIVERED = job(JobRequested, 1, priority=100, lane="priority")


@pytest.mark.parametrize(
    "newest",
    [
        job(JobCompleted, 1, attempt=1),
        job(JobFailed, 1, attempt=3, error="x"),
        job(JobCanceled, 1),  # canceled while queued: the orchestrator reported it already
        job(JobRequested, 2, priority=95, lane="priority"),  # a later step: this one finished
        job(JobStarted, 2, attempt=1, worker="w"),
        task(TaskCompleted),
        task(TaskFailed, error="x", step_index=1),
        task(TaskCanceled, step_index=1),
    ],
)
def test_a_job_with_an_outcome_a_later_step_or_an_ended_task_is_over(newest):
    assert over(DELIVERED, newest) is True


@pytest.mark.parametrize(
    "newest",
    [
        job(JobRequested, 1, priority=100, lane="priority"),  # just requested: the usual case
        job(JobStarted, 1, attempt=1, worker="w"),  # a redelivery after a lost worker
        job(JobProgress, 1, done=1, total=3),
        job(JobRetrying, 1, attempt=1, error="x", delay_s=1.0),  # the retry it waited for
        job(JobCompleted, 0, attempt=1),  # an earlier step's outcome
        None,  # nothing readable proves nothing
    ],
)
def test_a_job_still_open_runs(newest):
    assert over(DELIVERED, newest) is False


@pytest.mark.parametrize(
    "newest",
    [
        task(TaskRequested, task_type="t", label="T", user_relevant=True, steps=[]),
        task(TaskStarted),
        task(TaskCancelRequested),
    ],
)
def test_a_task_event_that_is_no_ending_defers_to_the_newest_job_event(newest):
    assert over(DELIVERED, newest) is None
