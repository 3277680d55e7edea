"""The image gate: one per worker, bounding the image work in flight across all its jobs, lane by lane."""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import Executor
from typing import Any, Callable, TypeVar

from ..kernel.vocabulary import LANES, Lane

T = TypeVar("T")


def _admitted() -> None:
    pass


class ImageGate:
    """At most `places` calls in the image processes at once, whichever jobs make them. A place that
    frees goes to the longest-waiting call of the first lane in LANES (priority before normal): a
    photographer's upload passes the maintenance and regeneration waiting beside it."""

    def __init__(self, pool: Executor, places: int) -> None:
        self.pool = pool
        self.places = places
        self.in_flight = 0  # places taken: by a call in the pool, or handed to a caller about to submit
        self._queues: dict[Lane, deque[asyncio.Future[None]]] = {lane: deque() for lane in LANES}

    def waiting(self, lane: Lane) -> int:
        return len(self._queues[lane])

    async def run(self, lane: Lane, fn: Callable[..., T], *args: Any, admit: Callable[[], None] = _admitted) -> T:
        """`fn(*args)` in the image processes once a place is free. `admit` runs when the place is had
        (a canceled job raises there, and submits nothing); the place frees when the pool is done
        with the call, not when its caller stops waiting."""
        await self._enter(lane)
        try:
            admit()
            call = self.pool.submit(fn, *args)
        except BaseException:
            self._leave()
            raise
        loop = asyncio.get_running_loop()
        call.add_done_callback(lambda _: _on(loop, self._leave))
        return await asyncio.wrap_future(call)

    async def _enter(self, lane: Lane) -> None:
        if self.in_flight < self.places:  # places are handed over, never left free while calls wait
            self.in_flight += 1
            return
        turn = asyncio.get_running_loop().create_future()
        queue = self._queues[lane]
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.cancelled():
                if turn in queue:  # else already passed over by a place that freed meanwhile
                    queue.remove(turn)
            else:  # handed a place as its caller went away: the next one has it
                self._leave()
            raise

    def _leave(self) -> None:
        for queue in self._queues.values():
            while queue:
                turn = queue.popleft()
                if not turn.done():  # not given up on by a canceled caller
                    turn.set_result(None)  # the place passes on: in_flight stays
                    return
        self.in_flight -= 1


def _on(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """`callback` on `loop`, from whichever thread the pool finishes a call in; none once it is closed."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(callback)
