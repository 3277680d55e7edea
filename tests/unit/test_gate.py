"""The image gate: a bound on the calls in flight across callers, priority lane first, FIFO in a lane."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator

import pytest

from darkroom.worker.gate import ImageGate


class Calls:
    """Calls that run in a real thread pool until released one by one; the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.releases: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def call(self, name: str) -> str:
        with self.lock:
            self.started.append(name)
            self.running += 1
            self.peak = max(self.peak, self.running)
            release = self.releases.setdefault(name, threading.Event())
        release.wait(10)
        with self.lock:
            self.running -= 1
        return name

    def release(self, name: str) -> None:
        with self.lock:
            self.releases.setdefault(name, threading.Event()).set()


@pytest.fixture
async def pool() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=16)  # more threads than places: only the gate bounds the calls
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


async def until(check, what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def one_place_taken(pool: ThreadPoolExecutor, name: str = "busy") -> tuple[Calls, ImageGate, asyncio.Future[str]]:
    """A gate of one place, taken by the call `name` (running until released)."""
    calls = Calls()
    gate = ImageGate(pool, places=1)
    taken = asyncio.ensure_future(gate.run("normal", calls.call, name))
    await until(lambda: calls.started == [name], f"{name} to start")
    return calls, gate, taken


async def test_no_more_calls_in_flight_than_places_whoever_makes_them(pool: ThreadPoolExecutor) -> None:
    calls = Calls()
    gate = ImageGate(pool, places=2)
    names = [f"{lane}{i}" for i in range(5) for lane in ("p", "n")]
    runs = [
        asyncio.ensure_future(gate.run("priority" if name[0] == "p" else "normal", calls.call, name)) for name in names
    ]
    await until(lambda: len(calls.started) == 2, "two calls to start")
    await asyncio.sleep(0.05)
    assert (len(calls.started), gate.waiting("priority") + gate.waiting("normal")) == (2, 8)
    for name in names:
        calls.release(name)
    assert sorted(await asyncio.gather(*runs)) == sorted(names)
    assert calls.peak == 2
    assert (gate.in_flight, gate.waiting("priority"), gate.waiting("normal")) == (0, 0, 0)


async def test_a_free_place_goes_to_the_priority_lane_first_and_in_order_within_a_lane(
    pool: ThreadPoolExecutor,
) -> None:
    calls, gate, first = await one_place_taken(pool)
    waiting = []
    for name, lane in [("n1", "normal"), ("n2", "normal"), ("p1", "priority"), ("p2", "priority")]:
        waiting.append(asyncio.ensure_future(gate.run(lane, calls.call, name)))
        await asyncio.sleep(0)  # queued in this order
    await until(lambda: gate.waiting("normal") == 2 and gate.waiting("priority") == 2, "four to wait")
    for name in ["busy", "p1", "p2", "n1", "n2"]:
        calls.release(name)
    await asyncio.gather(first, *waiting)
    assert calls.started == ["busy", "p1", "p2", "n1", "n2"]


async def test_a_caller_that_stops_waiting_gives_up_its_turn(pool: ThreadPoolExecutor) -> None:
    calls, gate, first = await one_place_taken(pool)
    gone = asyncio.ensure_future(gate.run("priority", calls.call, "gone"))
    after = asyncio.ensure_future(gate.run("normal", calls.call, "after"))
    await until(lambda: gate.waiting("priority") == 1 and gate.waiting("normal") == 1, "two to wait")
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert gate.waiting("priority") == 0
    calls.release("busy")
    calls.release("after")
    assert await asyncio.gather(first, after) == ["busy", "after"]
    assert calls.started == ["busy", "after"]


async def test_a_call_holds_its_place_until_the_pool_is_done_with_it_even_when_its_caller_is_gone(
    pool: ThreadPoolExecutor,
) -> None:
    calls, gate, abandoned = await one_place_taken(pool, "abandoned")
    abandoned.cancel()  # a job that timed out: its call goes on in the pool all the same
    await asyncio.gather(abandoned, return_exceptions=True)
    next_one = asyncio.ensure_future(gate.run("priority", calls.call, "next"))
    await asyncio.sleep(0.05)
    assert calls.started == ["abandoned"] and gate.waiting("priority") == 1
    calls.release("abandoned")
    calls.release("next")
    assert await next_one == "next"
    assert calls.peak == 1


async def test_a_call_its_admission_refuses_is_never_submitted_and_frees_its_place(
    pool: ThreadPoolExecutor,
) -> None:
    calls = Calls()
    gate = ImageGate(pool, places=1)

    def canceled() -> None:
        raise LookupError("the job was canceled")

    with pytest.raises(LookupError):
        await gate.run("normal", calls.call, "refused", admit=canceled)
    calls.release("after")
    assert await gate.run("normal", calls.call, "after") == "after"
    assert calls.started == ["after"] and gate.in_flight == 0
