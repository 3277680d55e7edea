"""What becomes of a delivered job (pure): the event that reports it and how its message is settled,
before it runs (no handler, out of attempts, its task canceled) and after an attempt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..kernel.events import JobCanceled, JobCompleted, JobEvent, JobFailed, JobRequested, JobRetrying
from ..kernel.supervise import describe
from .context import JobCanceledError, PermanentError


@dataclass(frozen=True)
class Verdict:
    """Report `event` (with `fields`; deduplicated by `msg_id`, tried again through a fail-over when it has
    one), then settle the message: ack (done), nak after `delay_s` (tried again), term (never again)."""

    event: type[JobEvent]
    settle: Literal["ack", "nak", "term"]
    msg_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0


def before_run(job: JobRequested, attempt: int, max_attempts: int, known: bool, canceled: bool) -> Verdict | None:
    """A job settled without running it, or None: run it."""
    if not known:
        return Verdict(
            JobFailed, "term", fields={"attempt": attempt, "error": f"no handler for job type {job.job_type!r}"}
        )
    if attempt > max_attempts:
        return Verdict(
            JobFailed,
            "term",
            fields={
                "attempt": attempt,
                "error": (f"gave up after {max_attempts} attempts: the last one never finished (worker lost)"),
            },
        )
    if canceled:
        return Verdict(JobCanceled, "ack", f"job:{job.job_id}:canceled")
    return None


def after_attempt(
    job: JobRequested,
    attempt: int,
    max_attempts: int,
    error: BaseException | None,
    delay_s: float,
    began: dict[str, str] | None = None,
    progress: tuple[int | None, int | None] = (None, None),
) -> Verdict:
    """An attempt's outcome: completed, canceled (its task was), retried after `delay_s` while attempts last
    and the error may pass, else failed. Each but a cancel says when and where the attempt `began` (a job
    that ends within 250 ms stores no job.started, CONTRACT §7.1); a completion carries the job's last
    `progress` that no job.progress stored."""
    ran: dict[str, Any] = {"attempt": attempt, **(began or {})}
    if error is None:
        done, total = progress
        return Verdict(JobCompleted, "ack", f"job:{job.job_id}:completed", {**ran, "done": done, "total": total})
    if isinstance(error, JobCanceledError):
        return Verdict(JobCanceled, "ack", f"job:{job.job_id}:canceled")
    if attempt < max_attempts and not isinstance(error, PermanentError):
        return Verdict(
            JobRetrying,
            "nak",
            f"job:{job.job_id}:retrying:{attempt}",
            {**ran, "error": describe(error), "delay_s": delay_s},
            delay_s,
        )
    return Verdict(JobFailed, "term", f"job:{job.job_id}:failed", {**ran, "error": describe(error)})
