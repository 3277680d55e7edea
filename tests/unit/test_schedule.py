"""services/orchestrator/schedule.py: one maintenance task per project and interval, whenever a timer wakes."""

from __future__ import annotations

import asyncio

from darkroom.kernel.ids import new_id
from darkroom.orchestrator.schedule import Schedule, next_slot, slot_of, task_id_for

HOUR = 3600.0


class Clock:
    """A wall clock whose sleeps end `early` seconds before they should, as timers may."""

    def __init__(self, now: float, early: float = 0.0) -> None:
        self.now = now
        self.early = early

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds - self.early, seconds / 2)


class Recording(Schedule):
    def __init__(self, clock: Clock, intervals: int, failures: int = 0) -> None:
        super().__init__(
            bus=None,
            definitions={},
            interval_s=HOUR,  # type: ignore[arg-type]
            clock=clock,
            sleep=clock.sleep,
        )
        self.slots: list[int] = []
        self.intervals = intervals
        self.failures = failures

    async def run_once(self, slot: int) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("NATS is away")
        self.slots.append(slot)
        if len(self.slots) == self.intervals:
            raise asyncio.CancelledError
        return 1


async def test_a_timer_that_wakes_just_before_the_boundary_starts_no_interval_twice():
    start = 1000 * HOUR + 10
    schedule = Recording(Clock(start, early=0.001), intervals=4)
    try:
        await schedule._run()
    except asyncio.CancelledError:
        pass
    assert schedule.slots == [1000, 1001, 1002, 1003]


async def test_a_failed_start_is_tried_again_within_its_interval():
    schedule = Recording(Clock(1000 * HOUR + 10), intervals=2, failures=2)
    try:
        await schedule._run()
    except asyncio.CancelledError:
        pass
    assert schedule.slots == [1000, 1001]


def test_the_next_interval_is_never_the_one_done_and_skips_those_slept_through():
    assert next_slot(7, 8 * HOUR - 0.001, HOUR) == 8
    assert next_slot(7, 7 * HOUR + 5, HOUR) == 8  # a clock set back: still the next one
    assert next_slot(7, 11 * HOUR + 5, HOUR) == 11
    assert slot_of(8 * HOUR - 0.001, HOUR) == 7


def test_each_project_and_interval_has_one_task_id_sorted_at_the_interval_start():
    one = task_id_for("maintenance", "P1", 1000, HOUR)
    assert one == task_id_for("maintenance", "P1", 1000, HOUR)
    assert (
        len(
            {
                one,
                task_id_for("maintenance", "P2", 1000, HOUR),
                task_id_for("maintenance", "P1", 1001, HOUR),
                task_id_for("other", "P1", 1000, HOUR),
            }
        )
        == 4
    )
    assert len(one) == 26 and one.isalnum() and one.isupper()
    assert one[:10] == new_id(int(1000 * HOUR * 1000))[:10]  # its time part is the interval's start
