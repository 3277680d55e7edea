"""Folds batches of stored events into SQLite: rows, outbox and checkpoint in one transaction.
A rebuild's way of doing it (rows kept in memory, a writer process) is replay/engine.py's."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from itertools import chain
from typing import Awaitable, Callable, Iterable, Iterator, Sequence, cast

import aiosqlite
import msgspec

from ..kernel.events import Codec, DeadLetterApplied, DeadLetterDiscarded, DeadLetterRecorded, Event, PoisonEvent
from ..kernel.messages import Stored
from ..kernel.subjects import DEAD_LETTERS, DISPATCH, dead_letter_of
from . import store
from .apply import Message, Needs, Rows, apply, fold_of, needs
from .store import (
    CHECKPOINT,
    JOBS,
    LANES,
    PHOTOS,
    PROJECTS,
    PRUNED_THROUGH,
    REFUSED,
    TASKS,
    TRASH,
    Row,
    Statements,
    in_thread,
    load_into,
    upsert,
)
from .transaction import transact
from .views import DeadLetter, DeadLetterRemoved

log = logging.getLogger("darkroom.projector")

DISPATCH_HEAD = b'{"type":"job.requested",'  # how the codec writes a dispatch copy: no need to decode it
OUTBOX_KEEP_SEQS = 200_000  # how far back a reconnecting SSE client can resume
PRUNE_EVERY = 2_000
SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
HANDLED = {DeadLetterDiscarded: "discarded", DeadLetterApplied: "applied"}

# Reads one stored message of the log by its sequence (None: not there).
Fetch = Callable[[int], Awaitable[Stored | None]]


@dataclass
class Applied:
    events: int = 0
    poisoned: int = 0


@dataclass
class Folded:
    """A batch decoded and applied in memory: everything its one transaction writes."""

    rows: Rows
    outbox: list[Row]
    dead: list[DeadLetter]  # set aside by this batch
    gone: list[int]  # dead letters discarded or applied by this batch
    listed: set[int]  # the dead letters listed once it is written
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
        fetch: Fetch | None = None,
    ) -> None:
        self.db = db
        # relay=False (a rebuild): no SSE outbox; a client resuming from before the checkpoint gets `reset`.
        self.relay = relay
        self.codec = codec
        self.on_applied = on_applied
        self.outbox_keep = outbox_keep
        # Reads a dead letter again when a dead_letter.applied asks for it; without it, none is applied.
        self.fetch = fetch
        self.listed: set[int] = set()  # the dead letters listed now: few, so kept here
        # Messages ahead of the checkpoint that a projector set aside (dead_letter.recorded), with why:
        # set aside here too, whatever this version can read, so every read model agrees with the log.
        self.recorded: dict[int, str] = {}
        self.checkpoint = 0
        self.counts = Applied()
        self._encoder = msgspec.json.Encoder()
        self._since_prune = 0

    async def open(self) -> Projector:
        if await store.rebuild_if_outdated(self.db):
            log.warning("the read model was written by another version of Darkroom: rebuilding it from the log")
        self.checkpoint = await store.get_meta(self.db, CHECKPOINT)
        self.listed = {row[0] for row in await self.db.execute_fetchall("SELECT seq FROM dead_letters")}
        return self

    def note_recorded(self, stored: Stored) -> None:
        """Read ahead of the checkpoint (before following the log): a dead_letter.recorded says the
        message it names is set aside when the projector gets to it."""
        if dead_letter_of(stored.subject, "recorded") is None:
            return
        try:
            event = self.codec.decode(stored.data)
        except PoisonEvent:
            return
        if isinstance(event, DeadLetterRecorded) and event.seq > self.checkpoint:
            self.recorded[event.seq] = event.reason

    async def apply_batch(self, batch: Sequence[Stored]) -> list[DeadLetter]:
        """Apply a batch in one transaction, committed when this returns; returns the messages it set aside."""
        folded = await self._fold(batch)
        if folded is None:
            return []
        await self._write(folded)
        return folded.dead

    def _fresh(self, batch: Sequence[Stored]) -> Sequence[Stored]:
        """What of the batch is past the checkpoint: in log order, most often all of it."""
        checkpoint = self.checkpoint
        return batch if batch and batch[0].seq > checkpoint else [s for s in batch if s.seq > checkpoint]

    async def _fold(self, batch: Sequence[Stored]) -> Folded | None:
        """The rows the batch's events touch, loaded first, and the batch applied to them."""
        fresh = self._fresh(batch)
        if not fresh:
            return None
        originals = await self._originals(fresh)
        decoded = list(self._decoded(fresh))
        wanted = Needs()
        for event in chain((event for _, event, _ in decoded), originals.values()):
            if event is not None:
                needs(event, wanted)
        folded = self._folded(await self._load(wanted), fresh)
        self._apply(folded, decoded, originals)
        return folded

    def _folded(self, rows: Rows, fresh: Sequence[Stored]) -> Folded:
        """The batch before its events are applied to `rows`."""
        return Folded(rows, [], [], [], set(self.listed), fresh[-1].seq, len(fresh))

    async def _originals(self, fresh: Sequence[Stored]) -> dict[int, Event | None]:
        """The dead letters this batch's dead_letter.applied events ask for, read again from the log and
        decoded by this version (None: still unreadable, or no longer in the log)."""
        found: dict[int, Event | None] = {}
        for stored in fresh:
            if not stored.subject.startswith(DEAD_LETTERS):  # most batches have none: one test a message
                continue
            seq = dead_letter_of(stored.subject, "applied")
            if seq is None:
                continue
            original = await self.fetch(seq) if self.fetch is not None else None
            try:
                found[seq] = self.codec.decode(original.data) if original is not None else None
            except PoisonEvent:
                found[seq] = None
        return found

    def _decoded(self, fresh: Sequence[Stored]) -> Iterator[tuple[Stored, Event | None, str | None]]:
        """The batch's events in order, without the dispatch copies; a poison message as (stored, None, why)."""
        decode = self.codec.decode
        recorded = self.recorded
        for stored in fresh:
            if recorded and stored.seq in recorded:
                yield stored, None, recorded[stored.seq]
                continue
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
        self,
        folded: Folded,
        decoded: Iterable[tuple[Stored, Event | None, str | None]],
        originals: dict[int, Event | None],
    ) -> None:
        """Folds the events into the batch's rows, with the SSE outbox rows and dead letters they make."""
        rows, outbox, listed = folded.rows, folded.outbox, folded.listed
        relay = self.relay
        for stored, event, reason in decoded:
            if event is None:
                if stored.seq in listed:
                    continue
                log.warning("dead letter at %d on %s: %s", stored.seq, stored.subject, reason)
                letter = DeadLetter(stored.seq, stored.subject, reason or "unreadable", stored.at)
                listed.add(letter.seq)
                folded.dead.append(letter)
                messages = [Message("dead_letter", letter, None, None, False)]
            elif (cls := type(event)) in HANDLED:
                messages = self._handled(folded, cast(DeadLetterDiscarded | DeadLetterApplied, event), originals)
            else:
                messages = fold_of(cls)(rows, event)
            if relay:
                for k, message in enumerate(messages):
                    outbox.append(self._outbox_row(stored.seq, k, message))

    def _handled(
        self, folded: Folded, event: DeadLetterDiscarded | DeadLetterApplied, originals: dict[int, Event | None]
    ) -> list[Message]:
        """A dead letter discarded, or applied here when it can be read now: no longer listed."""
        seq = event.seq
        original = originals.get(seq) if type(event) is DeadLetterApplied else None
        if seq not in folded.listed or (type(event) is DeadLetterApplied and original is None):
            return []  # not set aside (any more), or still unreadable: it stays as it is
        folded.listed.discard(seq)
        folded.gone.append(seq)
        messages = [Message("dead_letter_removed", DeadLetterRemoved(seq, HANDLED[type(event)]), None, None, False)]
        return messages + apply(folded.rows, original) if original is not None else messages

    async def _load(self, wanted: Needs) -> Rows:
        """The rows `wanted` names, from the file (None for those it does not have), in one trip."""
        rows = Rows(relay=self.relay)

        def load(db: sqlite3.Connection) -> None:
            load_into(db, TASKS, wanted.tasks, rows.tasks)
            load_into(db, JOBS, wanted.jobs, rows.jobs)
            load_into(db, PROJECTS, wanted.projects, rows.projects)
            load_into(db, PHOTOS, wanted.photos, rows.photos)

        if wanted.tasks or wanted.jobs or wanted.projects or wanted.photos:
            await in_thread(self.db, load)
        return rows

    async def _write(self, folded: Folded) -> None:
        await self._commit(self._statements(folded))
        self.checkpoint = folded.last
        self.listed = folded.listed
        if self.recorded:
            self.recorded = {seq: why for seq, why in self.recorded.items() if seq > folded.last}
        self.counts.events += folded.events
        self.counts.poisoned += len(folded.dead)
        if self.on_applied is not None:
            self.on_applied(folded.last, folded.outbox)

    async def _commit(self, statements: Statements) -> None:
        """Run one batch's statements in one transaction, in one trip to the connection's thread."""
        await in_thread(self.db, lambda db: transact(db, statements))

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
        if rows.lanes:
            out.append((LANES.upsert(), [LANES.to_row(lane) for lane in rows.lanes.values()]))
        if rows.refused:
            out.append((REFUSED.upsert(), [REFUSED.to_row(f) for f in rows.refused.values() if f]))
            out.append(
                ("DELETE FROM refused_folders WHERE folder = ?", [(k,) for k, f in rows.refused.items() if f is None])
            )
        if rows.purged:  # last: what the batch wrote of a purged project goes too
            purged: list[Row] = [(i,) for i in rows.purged]
            out += [
                (f"DELETE FROM {table} WHERE {column} = ?", purged)
                for table, column in (("photos", "project_id"), ("trash", "project_id"), ("projects", "id"))
            ]
        if folded.outbox:
            out.append(("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?)", folded.outbox))
        if folded.dead:
            out.append(
                (
                    "INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?)",
                    [msgspec.structs.astuple(d) for d in folded.dead],
                )
            )
        if folded.gone:
            out.append(("DELETE FROM dead_letters WHERE seq = ?", [(seq,) for seq in folded.gone]))
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
