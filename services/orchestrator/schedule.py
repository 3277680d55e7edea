"""The maintenance schedule: a `maintenance` task for every project every maintenance.interval_s."""

from __future__ import annotations

import asyncio
import logging
import time

from ..kernel import subjects
from ..kernel.bus import Bus
from ..kernel.definitions import Definitions
from ..kernel.events import ProjectCreated, TaskRequested
from ..kernel.ids import new_id
from ..kernel.supervise import Loops

log = logging.getLogger("darkroom.schedule")


def slot_of(now: float, interval_s: float) -> int:
    """Which interval `now` falls in: every orchestrator agrees, so they start the same tasks."""
    return int(now // interval_s)


class Schedule:
    def __init__(self, bus: Bus, definitions: Definitions, interval_s: float, task_type: str = "maintenance",
                 loops: Loops | None = None) -> None:
        self.bus = bus
        self.loops = loops or Loops()
        self.definitions = definitions
        self.interval_s = interval_s
        self.task_type = task_type
        self._loop: asyncio.Task | None = None

    def start(self) -> None:
        if self.interval_s > 0 and self.task_type in self.definitions:
            self._loop = self.loops.spawn("schedule", self._run)

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            slot = slot_of(time.time(), self.interval_s)
            end = (slot + 1) * self.interval_s
            try:
                # Through a NATS fail-over it is tried again within the interval, not an interval later.
                await self.loops.retry("schedule", lambda: self.run_once(slot), within=max(0.0, end - time.time()))
            except Exception:  # the next interval tries again
                log.exception("maintenance for interval %d failed to start", slot)
            await asyncio.sleep(max(0.0, end - time.time()))

    async def run_once(self, slot: int) -> int:
        """Start this interval's maintenance; the message id makes a second orchestrator's copy a no-op."""
        definition = self.definitions[self.task_type]
        started = 0
        async for batch in self.bus.read([f"{subjects.ROOT}.project.*.created"]):
            for stored in batch:
                project = self.bus.codec.decode(stored.data)
                if not isinstance(project, ProjectCreated):
                    continue
                task = TaskRequested(project_id=project.project_id, task_id=new_id(), source="maintenance",
                                     task_type=self.task_type, label=definition.label,
                                     user_relevant=definition.user_relevant, steps=list(definition.steps),
                                     folder=project.folder)
                await self.bus.publish(task, msg_id=f"maintenance:{project.project_id}:{slot}")
                started += 1
        return started
