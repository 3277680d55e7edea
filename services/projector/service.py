"""The live projector: the log followed from its checkpoint, applied in batches."""

from __future__ import annotations

import asyncio
import logging

from ..kernel.bus import Bus
from ..kernel.events import DeadLetterRecorded
from ..kernel.follow import Follower
from ..kernel.messages import Conflict, Expect, Stored
from ..kernel.subjects import DEAD_LETTERS_RECORDED, dead_letter_events
from ..kernel.supervise import Loops
from .engine import Projector
from .views import DeadLetter

log = logging.getLogger("darkroom.projector")

MAX_BATCH = 1_000
# After the first event of a batch: the services that event wakes go first (the read model trails
# the work, not the other way round), and what arrives meanwhile joins the same transaction.
GATHER_S = 0.001
# While events keep coming, one batch at most this often: each costs this process's loop several
# SQLite round trips, and a batch per event landed amid the next decision of a running task.
PACE_S = 0.02
LOOP = "projector"


def gather_for(now: float, last_batch: float) -> float:
    """How long to let events gather, once one has come, before applying them: GATHER_S after a quiet
    spell (a lone change shows at once), else until PACE_S has passed since the last batch began."""
    return max(GATHER_S, last_batch + PACE_S - now)


class ProjectorService:
    def __init__(self, bus: Bus, projector: Projector, loops: Loops | None = None) -> None:
        self.bus = bus
        self.projector = projector
        self.loops = loops or Loops()
        self.follower = Follower(bus, projector.checkpoint + 1, self._on_stored, self.loops, name="projector feed")
        self._buffer: list[Stored] = []
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await read_recorded(self.bus, self.projector)
        self.projector.fetch = self.bus.stored
        # Set aside before a restart and not yet recorded (it stopped in between): recorded now.
        listed = await self.projector.db.execute_fetchall("SELECT seq, subject, reason, at FROM dead_letters")
        await self._record([DeadLetter(*row) for row in listed])
        await self.follower.start()
        self._loop_task = self.loops.spawn(LOOP, self._loop)

    async def stop(self) -> None:
        await self.follower.stop()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    async def reached(self, seq: int, timeout: float) -> bool:
        """True once the read model has applied `seq`, within `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.projector.checkpoint < seq:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def _on_stored(self, stored: Stored) -> None:
        self._buffer.append(stored)
        self._wake.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_batch = -PACE_S
        while True:
            await self._wake.wait()
            await asyncio.sleep(gather_for(loop.time(), last_batch))
            self._wake.clear()
            last_batch = loop.time()
            taken, self._buffer = self._buffer, []  # what comes meanwhile waits for the next round
            for start in range(0, len(taken), MAX_BATCH):
                batch = taken[start : start + MAX_BATCH]
                # A batch that cannot be written now (a full or failing disk) is written once it can:
                # never skipped, so the read model never misses an event.
                dead = await self.loops.retry(LOOP, lambda: self.projector.apply_batch(batch))
                if dead:
                    await self.loops.retry(LOOP, lambda: self._record(dead))

    async def _record(self, letters: list[DeadLetter]) -> None:
        """Store that these messages were set aside, once each (another projector may have already):
        every read model built from the log later sets them aside too, whatever it can read."""
        results = await self.bus.send_many_settled(
            [
                self.bus.outgoing(
                    DeadLetterRecorded(seq=d.seq, subject=d.subject, reason=d.reason),
                    expect=Expect(dead_letter_events(d.seq), 0),
                )
                for d in letters
            ]
        )
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, Conflict):
                raise result


async def read_recorded(bus: Bus, projector: Projector) -> None:
    """What the log says was set aside ahead of the projector's checkpoint (a dead_letter.recorded
    comes after the message it names, so only those stored after the checkpoint can)."""
    async for batch in bus.read([DEAD_LETTERS_RECORDED], start_seq=projector.checkpoint + 1):
        for stored in batch:
            projector.note_recorded(stored)
