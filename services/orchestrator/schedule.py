"""The maintenance schedule: a `maintenance` task for every project every maintenance.interval_s.

Each (project, interval) has one task id, derived from both, and its task.requested is stored only
on a task subject still empty: the log itself keeps a second copy out, from a restart, a clock that
runs ahead or behind, or any number of orchestrators, at any distance in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from ..kernel import subjects
from ..kernel.bus import Bus
from ..kernel.definitions import Definitions
from ..kernel.events import ProjectCreated
from ..kernel.ids import derived_id
from ..kernel.messages import Accepted, Conflict, Expect
from ..kernel.supervise import Loops, transient

log = logging.getLogger("darkroom.schedule")


def slot_of(now: float, interval_s: float) -> int:
    """Which interval `now` falls in: every orchestrator agrees, so they start the same tasks."""
    return int(now // interval_s)


def next_slot(done: int, now: float, interval_s: float) -> int:
    """The interval after `done`, or the current one if later (intervals slept through are not made
    up): never `done` again, however early a timer wakes."""
    return max(done + 1, slot_of(now, interval_s))


def task_id_for(task_type: str, project_id: str, slot: int, interval_s: float) -> str:
    """The one task of a project's interval: sorted at the interval's start, the same for everyone."""
    start_ms = int(slot * interval_s * 1000)
    return derived_id(start_ms, f"{task_type}:{project_id}:{start_ms}")


class Schedule:
    def __init__(
        self,
        bus: Bus,
        definitions: Definitions,
        interval_s: float,
        task_type: str = "maintenance",
        loops: Loops | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bus = bus
        self.loops = loops or Loops()
        self.definitions = definitions
        self.interval_s = interval_s
        self.task_type = task_type
        self.clock = clock
        self.sleep = sleep
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval_s > 0 and self.task_type in self.definitions:
            self._loop = self.loops.spawn("schedule", self._run)

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    async def _run(self) -> None:
        slot = slot_of(self.clock(), self.interval_s)
        while True:
            await self._start_interval(slot)
            slot = next_slot(slot, self.clock(), self.interval_s)
            while (wait := slot * self.interval_s - self.clock()) > 0:
                await self.sleep(wait)

    async def _start_interval(self, slot: int) -> None:
        """run_once, tried again while the interval lasts: a task stored by an earlier try is not stored twice."""
        delay = 1.0
        while True:
            try:
                await self.run_once(slot)
                self.loops.up("schedule")
                return
            except Exception as exc:
                if transient(exc):  # NATS failing over: readiness says so while it lasts
                    self.loops.trouble("schedule", exc)
                else:
                    log.exception("maintenance for interval %d failed to start; trying again in %gs", slot, delay)
            if slot_of(self.clock() + delay, self.interval_s) != slot:
                return
            await self.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def run_once(self, slot: int) -> int:
        """Start this interval's maintenance of every project; returns how many tasks this call stored
        (none for a project whose task of this interval is stored already, by anyone)."""
        definition = self.definitions[self.task_type]
        tasks = []
        async for batch in self.bus.read([subjects.any_project("created")]):
            for stored in batch:
                project = self.bus.codec.decode(stored.data)
                if not isinstance(project, ProjectCreated):
                    continue
                task_id = task_id_for(self.task_type, project.project_id or "", slot, self.interval_s)
                task = definition.requested(
                    self.task_type, task_id, "maintenance", project_id=project.project_id, folder=project.folder
                )
                empty = Expect(subjects.task_subject(project.project_id, task_id, ">"), 0)
                tasks.append(self.bus.outgoing(task, f"maintenance:{project.project_id}:{slot}", empty))
        results = await self.bus.send_many_settled(tasks)
        failed = [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
        if failed:
            raise failed[0]
        # A conflict, or a duplicate message id: that project's task of this interval is stored already.
        return sum(isinstance(r, Accepted) and not r.duplicate for r in results)
