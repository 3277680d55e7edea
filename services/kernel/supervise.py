"""The long-running loops of one process, supervised: none of them dies unnoticed.

A transient error (NATS away or failing over, a timeout, a disk that is full or failing for now)
is retried with backoff, and the loop counts as down until it succeeds again: readiness says so.
Any other error means the process cannot go on as it is: it is recorded as fatal, and the command
running the process stops it and exits non-zero, so a service manager starts it afresh.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

import nats.errors

log = logging.getLogger("darkroom.supervise")

T = TypeVar("T")

# Waits between the tries of a failing step: quick at first (a NATS fail-over heals in well under a
# second), then once a second, which costs nothing while a disk stays full.
RETRY_DELAYS_S = (0.05, 0.1, 0.25, 0.5, 1.0)
REPEAT_WARNING_S = 30.0  # a loop still down says so again this often


class TransientError(Exception):
    """A failure that may go away on its own (JetStream did not acknowledge in time…)."""


def transient(exc: BaseException) -> bool:
    """Whether retrying may succeed once its cause goes away on its own."""
    return isinstance(exc, (OSError, sqlite3.OperationalError, nats.errors.Error, TransientError))


def retry_delay(attempt: int) -> float:
    return RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S)) - 1]


def backoff(attempt: int, base_s: float, max_s: float, rand: random.Random | None = None) -> float:
    """Exponential backoff with jitter: retries of much work failing together spread out."""
    ceiling = min(max_s, base_s * 2.0 ** min(max(0, attempt - 1), 60))
    draw = rand.random() if rand is not None else random.random()
    return round(ceiling * (0.5 + 0.5 * draw), 3)


@dataclass
class Down:
    why: str
    since: float  # time.monotonic()
    warned: float


class Loops:
    def __init__(self) -> None:
        self.down: dict[str, Down] = {}
        self.fatal: tuple[str, BaseException] | None = None
        self.failed = asyncio.Event()  # set with the first fatal error: the process must end
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, name: str, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `body` as loop `name`: again after a transient error, with backoff, and down until the
        body says it works again (`up(name)`); any other error is fatal. Returning ends the loop
        (it was asked to stop); so does cancelling it."""
        task = asyncio.create_task(self._supervised(name, body), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _supervised(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        attempt = 0
        while True:
            began = time.monotonic()
            try:
                await body()
                self.down.pop(name, None)  # ended on purpose: not down, and not recovered either
                return
            except Exception as exc:
                if not transient(exc):
                    self.fail(name, exc)
                    return
                # A loop that ran for a while before it failed starts its backoff afresh.
                attempt = 1 if time.monotonic() - began > RETRY_DELAYS_S[-1] * 2 else attempt + 1
                self.trouble(name, exc)
                await asyncio.sleep(retry_delay(attempt))

    async def retry(self, name: str, step: Callable[[], Awaitable[T]], within: float | None = None) -> T:
        """`step` until it succeeds; transient errors mark `name` down and are tried again with
        backoff (for up to `within` seconds, then the last one is raised); others are raised."""
        attempt = 0
        deadline = None if within is None else time.monotonic() + within
        while True:
            try:
                result = await step()
            except Exception as exc:
                if not transient(exc):
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    self.down.pop(name, None)  # the caller has the error now, and says what it means
                    raise
                attempt += 1
                self.trouble(name, exc)
                await asyncio.sleep(retry_delay(attempt))
                continue
            self.up(name)
            return result

    def trouble(self, name: str, exc: BaseException | str) -> None:
        """Loop `name` is down for now, for this reason; the first time and every so often, it says so."""
        why = exc if isinstance(exc, str) else describe(exc)
        now = time.monotonic()
        down = self.down.get(name)
        if down is None:
            log.warning("%s: %s; retrying", name, why)
            self.down[name] = Down(why, now, now)
        else:
            down.why = why
            if now - down.warned >= REPEAT_WARNING_S:
                down.warned = now
                log.warning("%s: still failing after %.0fs: %s; retrying", name, now - down.since, why)

    def up(self, name: str) -> None:
        down = self.down.pop(name, None)
        if down is not None:
            log.info("%s: recovered after %.1fs", name, time.monotonic() - down.since)

    def fail(self, name: str, exc: BaseException) -> None:
        """Loop `name` cannot go on: the process must end."""
        log.error("%s failed: %s", name, describe(exc), exc_info=exc)
        if self.fatal is None:
            self.fatal = (name, exc)
        self.failed.set()

    def problems(self) -> list[str]:
        """Why this process is not ready, as far as its loops tell: [] when every one runs."""
        out = [f"{self.fatal[0]} failed: {describe(self.fatal[1])}"] if self.fatal else []
        return out + [f"{name} down: {down.why}" for name, down in sorted(self.down.items())]

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retrieved(future: asyncio.Future[Any]) -> None:
    """A done-callback: the future's failure is reported by whoever waits for it, or by none, never by the
    event loop as never retrieved."""
    if not future.cancelled():
        future.exception()
