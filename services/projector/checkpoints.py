"""The read model's WAL copied into its file on a connection of its own. A checkpoint ends in an
fsync (4 ms typically on a busy VM's disk, 170 ms at worst): made by the commit that crossed
SQLite's 1,000-page mark, as by default, it held up that commit, and every SSE client with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from ..kernel.supervise import Loops
from .store import open_db

EVERY_S = 0.5  # at 1,000 events/s the WAL grows some 4 MB meanwhile, as between SQLite's own checkpoints
LOOP = "read model checkpoints"


class Checkpoints:
    """Checkpoints for the projector's connection `writer`, which makes none itself from now on."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    @classmethod
    async def open(cls, path: Path, writer: aiosqlite.Connection) -> Checkpoints:
        await writer.execute("PRAGMA wal_autocheckpoint=0")
        return cls(await open_db(path))

    async def once(self) -> None:
        """What the WAL holds now, into the file; the writer goes on appending meanwhile (PASSIVE)."""
        await self.db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")

    def start(self, loops: Loops) -> asyncio.Task[None]:
        return loops.spawn(LOOP, lambda: self._every(loops))

    async def _every(self, loops: Loops) -> None:
        while True:
            await asyncio.sleep(EVERY_S)
            await loops.retry(LOOP, self.once)

    async def close(self) -> None:
        await self.db.close()
