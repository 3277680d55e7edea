"""services/worker/service.py: which progress a job stores (each one is a durable event)."""

from __future__ import annotations

from darkroom.kernel.events import JobProgress
from darkroom.worker.service import PROGRESS_EVERY_S, _ProgressReporter


class Recorder:
    """Stands in for the worker: keeps what would be published."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int]] = []

    async def _report(self, job, kind, **fields) -> None:
        assert kind is JobProgress
        self.sent.append((fields["done"], fields["total"]))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def progress_stored(total: int, every_s: float) -> tuple[list[tuple[int, int]], tuple[int | None, int | None]]:
    """What a job stores that reports items 0..total done, one every `every_s` seconds: its job.progress
    events, and the progress its job.completed carries."""
    worker, clock = Recorder(), Clock()
    reporter = _ProgressReporter(worker, job=None, clock=clock)  # type: ignore[arg-type]
    for done in range(total + 1):
        clock.now += every_s
        await reporter.report(done, total)
    return worker.sent, reporter.last()


async def test_a_quick_job_stores_no_progress_its_outcome_carries_the_last():
    assert await progress_stored(3, PROGRESS_EVERY_S / 5) == ([], (3, 3))


async def test_a_long_job_reports_at_most_every_interval_and_its_outcome_the_last():
    assert await progress_stored(10, PROGRESS_EVERY_S / 2) == ([(1, 10), (3, 10), (5, 10), (7, 10), (9, 10)], (10, 10))


async def test_the_last_progress_goes_with_the_outcome_even_after_the_interval():
    assert await progress_stored(2, PROGRESS_EVERY_S) == ([(0, 2), (1, 2)], (2, 2))


async def test_a_photo_uploaded_alone_stores_no_progress_however_long_its_image_work_waits():
    worker, clock = Recorder(), Clock()
    reporter = _ProgressReporter(worker, job=None, clock=clock)  # type: ignore[arg-type]
    await reporter.report(0, 1)
    clock.now += 10 * PROGRESS_EVERY_S  # behind other photos in the image processes
    await reporter.report(1, 1)
    assert worker.sent == [] and reporter.last() == (1, 1)


async def test_an_outcome_carries_no_progress_a_job_progress_stored():
    worker, clock = Recorder(), Clock()
    reporter = _ProgressReporter(worker, job=None, clock=clock)  # type: ignore[arg-type]
    clock.now += PROGRESS_EVERY_S
    await reporter.report(1, 2)
    assert worker.sent == [(1, 2)] and reporter.last() == (None, None)
