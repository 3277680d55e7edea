"""Folds batches of stored events into SQLite: rows, outbox and checkpoint in one transaction.
A rebuild's way of doing it (rows kept in memory, a writer process) is replay/engine.py's."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import aiosqlite
import msgspec

from ..kernel.events import Codec, Event, PoisonEvent
from ..kernel.messages import Stored
from ..kernel.subjects import DISPATCH
from . import store
from .apply import Message, Needs, Rows, apply, needs
from .store import CHECKPOINT, JOBS, PHOTOS, PROJECTS, PRUNED_THROUGH, TASKS, TRASH, Row, Statements, load_into, upsert

log = logging.getLogger("darkroom.projector")

DISPATCH_HEAD = b'{"type":"job.requested",'  # how the codec writes a dispatch copy: no need to decode it
OUTBOX_KEEP_SEQS = 200_000  # how far back a reconnecting SSE client can resume
PRUNE_EVERY = 2_000
SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"


@dataclass
class Applied:
    events: int = 0
    poisoned: int = 0


@dataclass
class Folded:
    """A batch decoded and applied in memory: everything its one transaction writes."""

    rows: Rows
    outbox: list[Row]
    dead: list[Row]
    last: int
    events: int


class Projector:
    def __init__(
        self,
        db: aiosqlite.Connection,
        codec: Codec,
        on_applied: Callable[[int, list[Row]], None] | None = None,
        outbox_keep: int = OUTBOX_KEEP_SEQS,
        relay: bool = True,
    ) -> None:
        self.db = db
        # relay=False (a rebuild): no SSE outbox; a client resuming from before the checkpoint gets `reset`.
        self.relay = relay
        self.codec = codec
        self.on_applied = on_applied
        self.outbox_keep = outbox_keep
        self.checkpoint = 0
        self.counts = Applied()
        self._encoder = msgspec.json.Encoder()
        self._since_prune = 0

    async def open(self) -> Projector:
        if await store.rebuild_if_outdated(self.db):
            log.warning("the read model was written by another version of Darkroom: rebuilding it from the log")
        self.checkpoint = await store.get_meta(self.db, CHECKPOINT)
        return self

    async def apply_batch(self, batch: Sequence[Stored]) -> None:
        """Apply a batch in one transaction, committed when this returns."""
        folded = await self._fold(batch)
        if folded is not None:
            await self._write(folded)

    def _fresh(self, batch: Sequence[Stored]) -> Sequence[Stored]:
        """What of the batch is past the checkpoint: in log order, most often all of it."""
        checkpoint = self.checkpoint
        return batch if batch and batch[0].seq > checkpoint else [s for s in batch if s.seq > checkpoint]

    async def _fold(self, batch: Sequence[Stored]) -> Folded | None:
        """The rows the batch's events touch, loaded first, and the batch applied to them."""
        fresh = self._fresh(batch)
        if not fresh:
            return None
        decoded = list(self._decoded(fresh))
        wanted = Needs()
        for _, event, _ in decoded:
            if event is not None:
                needs(event, wanted)
        rows = await self._load(wanted)
        outbox, dead = self._apply(rows, decoded)
        return Folded(rows, outbox, dead, fresh[-1].seq, len(fresh))

    def _decoded(self, fresh: Sequence[Stored]) -> Iterator[tuple[Stored, Event | None, str | None]]:
        """The batch's events in order, without the dispatch copies; a poison message as (stored, None, why)."""
        decode = self.codec.decode
        for stored in fresh:
            dispatch = stored.subject.startswith(DISPATCH)
            if dispatch and stored.data.startswith(DISPATCH_HEAD):
                continue  # a copy of job.requested for the workers; the original is applied
            try:
                event = decode(stored.data)
            except PoisonEvent as exc:
                yield stored, None, str(exc)
                continue
            if not dispatch:
                yield stored, event, None

    def _apply(
        self, rows: Rows, decoded: Iterable[tuple[Stored, Event | None, str | None]]
    ) -> tuple[list[Row], list[Row]]:
        """Folds the events into `rows`; the SSE outbox rows and dead letters they make."""
        outbox: list[Row] = []
        dead: list[Row] = []
        relay = self.relay
        for stored, event, reason in decoded:
            if event is None:
                log.warning("dead letter at %d on %s: %s", stored.seq, stored.subject, reason)
                dead.append((stored.seq, stored.subject, reason, stored.at))
                continue
            messages = apply(rows, event)
            if relay:
                for k, message in enumerate(messages):
                    outbox.append(self._outbox_row(stored.seq, k, message))
        return outbox, dead

    async def _load(self, wanted: Needs) -> Rows:
        """The rows `wanted` names, from the file (None for those it does not have)."""
        rows = Rows(relay=self.relay)
        await load_into(self.db, TASKS, wanted.tasks, rows.tasks)
        await load_into(self.db, JOBS, wanted.jobs, rows.jobs)
        await load_into(self.db, PROJECTS, wanted.projects, rows.projects)
        await load_into(self.db, PHOTOS, wanted.photos, rows.photos)
        return rows

    async def _write(self, folded: Folded) -> None:
        await self._commit(self._statements(folded))
        self.checkpoint = folded.last
        self.counts.events += folded.events
        self.counts.poisoned += len(folded.dead)
        if self.on_applied is not None:
            self.on_applied(folded.last, folded.outbox)

    async def _commit(self, statements: Statements) -> None:
        """Run one batch's statements in one transaction."""
        await self.db.execute("BEGIN")
        try:
            for sql, params in statements:
                await self.db.executemany(sql, params)
            await self.db.commit()
        except BaseException:
            try:
                await self.db.rollback()
            except sqlite3.Error:  # SQLite may have rolled back already (a full or failing disk)
                pass
            raise

    def _statements(self, folded: Folded) -> Statements:
        """What the batch's one transaction runs, in order: each SQL with the parameters of its rows."""
        rows, last = folded.rows, folded.last
        out: Statements = [
            *upsert(TASKS, rows.dirty_tasks, rows.tasks),
            *upsert(JOBS, rows.dirty_jobs, rows.jobs),
            *upsert(PROJECTS, rows.dirty_projects, rows.projects),
        ]
        kept = [p for i in rows.dirty_photos if (p := rows.photos[i]) is not None]
        gone: list[Row] = [(i,) for i in rows.dirty_photos if rows.photos[i] is None]
        if kept:
            out.append((PHOTOS.upsert(), [PHOTOS.to_row(p) for p in kept]))
        if gone:
            out.append(("DELETE FROM photos WHERE id = ?", gone))
        if rows.trash:
            out.append((TRASH.upsert(), [TRASH.to_row(t) for t in rows.trash.values() if t]))
            out.append(("DELETE FROM trash WHERE id = ?", [(i,) for i, t in rows.trash.items() if t is None]))
        if folded.outbox:
            out.append(("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?)", folded.outbox))
        if folded.dead:
            out.append(("INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?)", folded.dead))
        meta = [(CHECKPOINT, last)] if self.relay else [(CHECKPOINT, last), (PRUNED_THROUGH, last)]
        out.append((SET_META, meta))
        self._since_prune += folded.events
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            horizon = last - self.outbox_keep
            if horizon > 0:
                out.append(("DELETE FROM outbox WHERE seq <= ?", [(horizon,)]))
                out.append((SET_META, [(PRUNED_THROUGH, horizon)]))
        return out

    def _outbox_row(self, seq: int, k: int, message: Message) -> Row:
        return (
            seq,
            k,
            message.event,
            message.project_id,
            message.folder,
            int(message.maintenance),
            self._encoder.encode(message.data).decode(),
        )
