"""The words events, read models and the API share, each defined once (CONTRACT §2, §3, §4)."""

from __future__ import annotations

from typing import Literal, get_args

Source = Literal["user", "maintenance", "system"]
Lane = Literal["priority", "normal"]
Kind = Literal["jpg", "raw", "other"]  # a photo's variant
Regenerated = Literal["derivatives", "metadata"]  # what a regenerate task makes again
DerivativeStatus = Literal["pending", "generated", "failed", "missing", "not_supported"]
# Why derivatives failed: `unreadable` and `too_large` stay so for the same file; the others may pass.
FailureKind = Literal[
    "unreadable", "too_large", "no_space", "out_of_memory", "timeout", "crashed", "io_error", "unknown"
]
TaskStatus = Literal["queued", "running", "completed", "failed", "canceled"]
JobStatus = Literal["queued", "running", "retrying", "completed", "failed", "canceled"]

LANES: tuple[Lane, ...] = get_args(Lane)
# A task or job in one of these has ended for good; each is also the name of the event that ends a task.
TERMINAL: tuple[str, ...] = ("completed", "failed", "canceled")
OPEN_TASK: tuple[str, ...] = ("queued", "running")
# The job states a lane's counts show: every one but completed and canceled, which most jobs end as.
COUNTED_STATES: tuple[JobStatus, ...] = ("queued", "running", "retrying", "failed")
