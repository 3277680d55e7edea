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
from ..kernel.events import (
    Event,
    PoisonEvent,
    ProjectCreated,
    ProjectDeleted,
    ProjectPurged,
    ProjectRenamed,
    ProjectRestored,
)
from ..kernel.ids import derived_id
from ..kernel.messages import Accepted, Conflict, Expect, Outgoing
from ..kernel.supervise import Loops, transient

log = logging.getLogger("darkroom.schedule")


def slot_of(now: float, interval_s: float) -> int:
    """Which interval `now` falls in: every orchestrator agrees, so they start the same tasks."""
    return int(now // interval_s)


def next_slot(done: int, now: float, interval_s: float) -> int:
    """The interval after `done`, or the current one if later (intervals slept through are not made
    up): never `done` again, however early a timer wakes."""
    return max(done + 1, slot_of(now, interval_s))


# What tells which projects there are, and in which folder (a rename or a restore moves it).
PROJECT_FILTERS = [subjects.any_project(name) for name in ("created", "renamed", "deleted", "restored", "purged")]


def live_projects(events: list[Event]) -> dict[str, str]:
    """The projects there are (not deleted), by id, with their folders: from their lifecycle events (pure)."""
    folders: dict[str, str] = {}
    for event in events:
        project_id = event.project_id or ""
        match event:
            case ProjectCreated():
                folders.setdefault(project_id, event.folder)
            case ProjectRenamed() if project_id in folders:
                folders[project_id] = event.folder
            case ProjectRestored():
                folders[project_id] = event.folder
            case ProjectDeleted() | ProjectPurged():
                folders.pop(project_id, None)
    return folders


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
        global_task_type: str = "projects_maintenance",
    ) -> None:
        self.bus = bus
        self.loops = loops or Loops()
        self.definitions = definitions
        self.interval_s = interval_s
        self.task_type = task_type
        self.global_task_type = global_task_type  # once an interval for all projects: purge, folder discovery
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
        """Start this interval's maintenance of every project there is, and the one of all projects;
        returns how many tasks this call stored (none for a task of this interval stored already, by anyone)."""
        events: list[Event] = []
        async for batch in self.bus.read(PROJECT_FILTERS):
            for stored in batch:
                try:
                    events.append(self.bus.codec.decode(stored.data))
                except PoisonEvent:  # recorded as a dead letter; it tells nothing about a project
                    continue
        tasks = [
            self._task(self.task_type, project_id, folder, slot) for project_id, folder in live_projects(events).items()
        ]
        if self.global_task_type in self.definitions:
            tasks.append(self._task(self.global_task_type, None, None, slot))
        results = await self.bus.send_many_settled(tasks)
        failed = [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
        if failed:
            raise failed[0]
        # A conflict, or a duplicate message id: that project's task of this interval is stored already.
        return sum(isinstance(r, Accepted) and not r.duplicate for r in results)

    def _task(self, task_type: str, project_id: str | None, folder: str | None, slot: int) -> Outgoing:
        task_id = task_id_for(task_type, project_id or subjects.NO_PROJECT, slot, self.interval_s)
        task = self.definitions[task_type].requested(
            task_type, task_id, "maintenance", project_id=project_id, folder=folder
        )
        empty = Expect(subjects.task_subject(project_id, task_id, ">"), 0)
        return self.bus.outgoing(task, f"{task_type}:{project_id or subjects.NO_PROJECT}:{slot}", empty)
