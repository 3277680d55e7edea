"""Supervised loops: transient errors retried and reported, others fatal; nothing ends unnoticed."""

from __future__ import annotations

import asyncio
import random
import sqlite3

import nats.errors
import pytest

from darkroom.kernel.health import Health
from darkroom.kernel.publish import PublishError
from darkroom.kernel.supervise import Loops, backoff, transient


def test_what_counts_as_transient() -> None:
    for exc in (
        OSError(28, "No space left on device"),
        sqlite3.OperationalError("database or disk is full"),
        nats.errors.TimeoutError(),
        nats.errors.ConnectionClosedError(),
        TimeoutError(),
        PublishError(None, "no acknowledgement"),
    ):
        assert transient(exc), exc
    for exc in (KeyError("x"), TypeError("bug"), sqlite3.DatabaseError("database disk image is malformed")):
        assert not transient(exc), exc


async def test_a_step_is_retried_through_transient_errors_and_its_loop_is_down_meanwhile() -> None:
    loops = Loops()
    seen: list[list[str]] = []
    failures = [sqlite3.OperationalError("disk I/O error")] * 3

    async def write() -> str:
        seen.append(loops.problems())
        if failures:
            raise failures.pop()
        return "written"

    assert await loops.retry("projector", write) == "written"
    assert seen[0] == [] and seen[1] == ["projector down: OperationalError: disk I/O error"]
    assert loops.problems() == [] and loops.fatal is None


async def test_a_step_gives_up_after_its_time_and_other_errors_are_raised_at_once() -> None:
    loops = Loops()
    calls = 0

    async def lost() -> None:
        nonlocal calls
        calls += 1
        raise nats.errors.TimeoutError()

    with pytest.raises(nats.errors.TimeoutError):
        await loops.retry("outcomes", lost, within=0.2)
    assert calls > 1 and loops.problems() == []  # the caller has the error, and the loop is not left down

    async def bug() -> None:
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        await loops.retry("outcomes", bug)


async def test_a_loop_restarts_after_a_transient_error_and_a_bug_ends_the_process() -> None:
    loops = Loops()
    runs = 0

    async def slot() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ConnectionResetError("NATS went away")
        loops.up("slot 0")
        raise KeyError("a bug")

    await asyncio.wait_for(loops.spawn("slot 0", slot), 5)
    assert runs == 3
    assert loops.failed.is_set() and loops.fatal[0] == "slot 0"
    health = Health(loops, starting=False)
    assert health.broken() == "slot 0 failed: KeyError: 'a bug'"
    assert await health.problems() == ["slot 0 failed: KeyError: 'a bug'"]


async def test_a_loop_that_returns_has_ended_on_purpose_and_a_check_adds_its_reason() -> None:
    loops = Loops()
    loops.trouble("slot 1", "pulling from lane normal: 503")

    async def stopping() -> None:
        return

    await loops.spawn("slot 1", stopping)
    assert loops.problems() == [] and not loops.failed.is_set()

    async def lane_missing() -> str | None:
        return "consumer missing: lane_priority"

    health = Health(loops, [lane_missing], starting=False)
    assert await health.problems() == ["consumer missing: lane_priority"]
    assert health.broken() is None


async def test_a_process_is_not_ready_until_every_service_has_started() -> None:
    # The API listens before the services after it have added their checks (`up`'s worker process).
    health = Health(Loops())
    assert await health.problems() == ["starting"]
    health.starting = False
    assert await health.problems() == []


class Fixed:
    """A stand-in for random.Random that always draws the same number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_ceiling_doubles_per_attempt_until_the_cap():
    top = Fixed(1.0)  # the top of the jitter range is the ceiling itself
    assert [backoff(a, 1.0, 60.0, top) for a in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(3, 0.5, 60.0, top) == 2.0


def test_backoff_first_attempt_waits_about_the_base():
    assert backoff(1, 2.0, 60.0, Fixed(1.0)) == 2.0
    assert backoff(0, 2.0, 60.0, Fixed(1.0)) == 2.0  # never below the base's range


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 7, 10, 30])
def test_backoff_jitter_stays_within_half_to_full_ceiling(attempt):
    ceiling = min(60.0, 1.0 * 2 ** (attempt - 1))
    rng = random.Random(attempt)
    delays = [backoff(attempt, 1.0, 60.0, rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 50  # actually jittered, not one value
    assert backoff(attempt, 1.0, 60.0, Fixed(0.0)) == ceiling / 2


def test_backoff_without_a_generator_uses_module_randomness():
    delays = {backoff(4, 1.0, 60.0) for _ in range(50)}
    assert all(4.0 <= d <= 8.0 for d in delays) and len(delays) > 1


def test_backoff_is_capped_for_any_attempt_count():
    assert backoff(2000, 1.0, 60.0, Fixed(1.0)) == 60.0
