"""Rebuild the read models from the log, and compare a rebuild with the live read model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import aiosqlite

from ..kernel import collector
from ..kernel.bus import Bus
from ..projector import store
from ..projector.service import read_recorded
from ..projector.store import CHECKPOINT, COMPARED
from .engine import Rebuild
from .fastread import read_all
from .writer import Writer

Progress = Callable[[int, int], None]
KEEP_ROWS = 500_000  # rows a rebuild keeps in memory (a few hundred MB at most) rather than reading back


@dataclass
class ReplayResult:
    events: int
    seconds: float
    checkpoint: int
    differences: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def rebuild(bus: Bus, projector: Rebuild, until: int, progress: Progress | None = None) -> int:
    """Apply the log from the projector's checkpoint up to `until`; returns events applied."""
    applied = 0
    if projector.checkpoint < until:
        async for batch in read_all(bus, start_seq=projector.checkpoint + 1, end_seq=until):
            await projector.apply_batch(batch)
            applied += len(batch)
            if progress is not None:
                progress(projector.checkpoint, until)
    await projector.settle()
    return applied


async def replay(
    bus: Bus, into: Path, live: Path | None = None, verify: bool = False, progress: Progress | None = None
) -> ReplayResult:
    """Rebuild the read models into a new file, exactly as the live projector has them (`verify`:
    up to the live checkpoint, then compare). The rebuilt file keeps no SSE outbox: a client resuming
    from before its checkpoint gets `reset`, as from a pruned point."""
    db = await store.open_db(into)
    try:
        # A new file, built again from the log should this stop half-way: no fsync per batch,
        # one checkpoint at the end.
        await db.execute("PRAGMA synchronous=OFF")
        writer = await Writer.start(into)
        try:
            projector = await Rebuild(db, bus.codec, KEEP_ROWS, writer, fetch=bus.stored).open()
            await read_recorded(bus, projector)
            with collector.spared():
                result = await _run(bus, db, projector, live, verify, progress)
        except BaseException:
            await writer.abort()
            raise
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return result
    finally:
        await db.close()


async def _run(
    bus: Bus, db: aiosqlite.Connection, projector: Rebuild, live: Path | None, verify: bool, progress: Progress | None
) -> ReplayResult:
    began = time.perf_counter()
    if not verify:
        events = await rebuild(bus, projector, await bus.last_seq(), progress)
        return ReplayResult(events, time.perf_counter() - began, projector.checkpoint)
    assert live is not None
    live_db = await store.open_db(live, readonly=True)
    try:
        # One read transaction: the live rows and their checkpoint are one consistent snapshot.
        await live_db.execute("BEGIN")
        target = await store.get_meta(live_db, CHECKPOINT)
        events = await rebuild(bus, projector, target, progress)
        seconds = time.perf_counter() - began
        differences = await compare(live_db, db)
        await live_db.execute("ROLLBACK")
    finally:
        await live_db.close()
    return ReplayResult(events, seconds, target, differences)


async def compare(live: aiosqlite.Connection, rebuilt: aiosqlite.Connection) -> list[str]:
    differences = []
    for table, key in COMPARED.items():
        left = await _rows(live, table, key)
        right = await _rows(rebuilt, table, key)
        for row_key in sorted(set(left) | set(right), key=str):
            a, b = left.get(row_key), right.get(row_key)
            if a != b:
                differences.append(f"{table} {key}={row_key}: live {a} != replayed {b}")
    return differences


async def _rows(db: aiosqlite.Connection, table: str, key: str) -> dict:
    db.row_factory = aiosqlite.Row
    try:
        async with db.execute(f"SELECT * FROM {table} ORDER BY {key}") as cursor:
            return {row[key]: dict(row) for row in await cursor.fetchall()}
    finally:
        db.row_factory = None
