"""services/worker/outcome.py: what becomes of a delivered job, before it runs and after an attempt."""

from __future__ import annotations

from darkroom.kernel.events import JobCanceled, JobCompleted, JobFailed, JobRequested, JobRetrying
from darkroom.worker.context import JobCanceledError, PermanentError
from darkroom.worker.outcome import Verdict, after_attempt, before_run

JOB = JobRequested(
    project_id="P",
    task_id="T",
    job_id="T-1",
    source="user",
    task_type="t",
    job_type="noop",
    step_index=1,
    priority=90,
    lane="priority",
)


def test_a_job_of_a_known_type_with_attempts_left_and_its_task_going_on_runs():
    assert before_run(JOB, attempt=3, max_attempts=3, known=True, canceled=False) is None


def test_a_job_nobody_can_run_fails_for_good_and_says_why():
    verdict = before_run(JOB, attempt=1, max_attempts=3, known=False, canceled=False)
    assert verdict == Verdict(JobFailed, "term", None, {"attempt": 1, "error": "no handler for job type 'noop'"})


def test_a_delivery_past_the_last_attempt_fails_as_a_lost_worker():
    verdict = before_run(JOB, attempt=4, max_attempts=3, known=True, canceled=True)
    assert verdict is not None and (verdict.event, verdict.settle) == (JobFailed, "term")
    assert "gave up after 3 attempts" in verdict.fields["error"]


def test_a_job_of_a_canceled_task_is_canceled_once_without_running():
    assert before_run(JOB, attempt=1, max_attempts=3, known=True, canceled=True) == Verdict(
        JobCanceled, "ack", "job:T-1:canceled"
    )


def test_an_attempt_that_raises_nothing_completes():
    assert after_attempt(JOB, 2, 3, None, 0.0) == Verdict(
        JobCompleted, "ack", "job:T-1:completed", {"attempt": 2, "done": None, "total": None}
    )


BEGAN = {"started_at": "2030-01-01T00:00:00.000Z", "worker": "host:1"}


def test_an_outcome_says_when_and_where_its_attempt_began_and_a_completion_its_last_progress():
    # A job that ends within 250 ms stores no job.started (CONTRACT §7.1): its outcome says so instead.
    assert after_attempt(JOB, 1, 3, None, 0.0, BEGAN, (4, 4)).fields == {"attempt": 1, **BEGAN, "done": 4, "total": 4}
    assert after_attempt(JOB, 1, 3, RuntimeError("x"), 1.0, BEGAN).fields == {
        "attempt": 1,
        **BEGAN,
        "error": "RuntimeError: x",
        "delay_s": 1.0,
    }
    assert after_attempt(JOB, 3, 3, RuntimeError("x"), 1.0, BEGAN).fields == {
        "attempt": 3,
        **BEGAN,
        "error": "RuntimeError: x",
    }
    assert after_attempt(JOB, 1, 3, JobCanceledError(), 0.0, BEGAN).fields == {}


def test_a_canceled_attempt_is_canceled_whatever_attempts_are_left():
    assert after_attempt(JOB, 3, 3, JobCanceledError(), 1.5) == Verdict(JobCanceled, "ack", "job:T-1:canceled")


def test_a_failure_that_may_pass_is_retried_after_the_delay_while_attempts_last():
    verdict = after_attempt(JOB, 2, 3, RuntimeError("disk busy"), 1.5)
    assert verdict == Verdict(
        JobRetrying,
        "nak",
        "job:T-1:retrying:2",
        {"attempt": 2, "error": "RuntimeError: disk busy", "delay_s": 1.5},
        1.5,
    )


def test_the_last_attempt_or_a_permanent_error_fails_for_good():
    assert after_attempt(JOB, 3, 3, RuntimeError("disk busy"), 1.5) == Verdict(
        JobFailed, "term", "job:T-1:failed", {"attempt": 3, "error": "RuntimeError: disk busy"}
    )
    verdict = after_attempt(JOB, 1, 3, PermanentError("not a photo"), 1.5)
    assert (verdict.event, verdict.settle, verdict.fields["error"]) == (
        JobFailed,
        "term",
        "PermanentError: not a photo",
    )
