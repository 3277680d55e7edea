"""The live projector: an ordered consumer from its checkpoint, applied in batches."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg

from ..kernel.bus import Bus, Stored
from .engine import Projector

log = logging.getLogger("darkroom.projector")

MAX_BATCH = 1_000
# After the first event of a batch: the services that event wakes go first (the read model trails
# the work, not the other way round), and what arrives meanwhile joins the same transaction.
GATHER_S = 0.001


class ProjectorService:
    def __init__(self, bus: Bus, projector: Projector) -> None:
        self.bus = bus
        self.projector = projector
        self._buffer: list[Stored] = []
        self._wake = asyncio.Event()
        self._sub = None
        self._loop_task: asyncio.Task | None = None
        self.failed: BaseException | None = None

    async def start(self) -> None:
        self._sub = await self.bus.follow(self.projector.checkpoint + 1, self._on_message)
        self._loop_task = asyncio.create_task(self._loop(), name="projector")

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # already gone with its connection
                pass
            self._sub = None
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    async def _on_message(self, msg: Msg) -> None:
        self._buffer.append(Stored.from_msg(msg))
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(GATHER_S)
            self._wake.clear()
            while self._buffer:
                batch, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
                try:
                    await self.projector.apply_batch(batch)
                except Exception as exc:
                    # A read model that cannot be written is not something to skip past.
                    self.failed = exc
                    log.exception("projector stopped: could not apply events %d..%d", batch[0].seq, batch[-1].seq)
                    raise
