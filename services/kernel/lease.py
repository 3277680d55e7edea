"""Project file leases: one JetStream KV key per project, with a TTL so a dead worker's lease ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Callable

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from .bus import Bus
from .provision import LEASE_TTL_S, lease_bucket

log = logging.getLogger("darkroom.worker")


class LeaseBusy(Exception):
    pass


class Leases:
    """Who moves or adopts a project's files: one holder at a time, across all processes."""

    def __init__(self, bus: Bus, holder: str, replicas: int = 1) -> None:
        self.bus = bus
        self.holder = holder
        self.replicas = replicas
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await lease_bucket(self.bus.js, self.replicas)
        return self._kv

    @contextlib.asynccontextmanager
    async def hold(
        self, project_id: str, purpose: str, alive: Callable[[], None] | None = None, timeout: float | None = None
    ) -> AsyncIterator[None]:
        """Wait for the project's lease (staying alive meanwhile), keep it fresh, release it."""
        kv = await self._bucket()
        value = f"{self.holder} {purpose}".encode()
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            try:
                revision = await kv.create(project_id, value)
                break
            except KeyWrongLastSequenceError:
                if alive is not None:
                    alive()  # waiting on another job is not being stuck
                if deadline is not None and asyncio.get_running_loop().time() > deadline:
                    raise LeaseBusy(f"project {project_id} is busy with another file operation") from None
                await asyncio.sleep(0.05)
        refresher = asyncio.create_task(self._refresh(kv, project_id, value, revision))
        try:
            yield
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
            try:
                await kv.delete(project_id)
            except (NotFoundError, Exception) as exc:  # expired already; the TTL ends it either way
                log.debug("releasing lease %s: %s", project_id, exc)

    async def _refresh(self, kv: KeyValue, key: str, value: bytes, revision: int) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL_S / 3)
            revision = await kv.update(key, value, last=revision)
