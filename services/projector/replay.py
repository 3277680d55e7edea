"""Rebuild the read models from the log, and compare a rebuild with the live read model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import aiosqlite

from ..kernel.bus import Bus
from . import store
from .engine import Projector
from .store import CHECKPOINT, COMPARED

Progress = Callable[[int, int], None]


@dataclass
class ReplayResult:
    events: int
    seconds: float
    checkpoint: int
    differences: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def rebuild(bus: Bus, projector: Projector, until: int, progress: Progress | None = None) -> int:
    """Apply the log from the projector's checkpoint up to `until`; returns events applied."""
    applied = 0
    if projector.checkpoint >= until:
        return 0
    async for batch in bus.read(start_seq=projector.checkpoint + 1, end_seq=until, batch=1000):
        await projector.apply_batch(batch)
        applied += len(batch)
        if progress is not None:
            progress(projector.checkpoint, until)
    return applied


async def replay(bus: Bus, into: Path, live: Path | None = None, verify: bool = False,
                 progress: Progress | None = None) -> ReplayResult:
    db = await store.open_db(into)
    try:
        projector = await Projector(db, bus.codec).open()
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
    finally:
        await db.close()


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
