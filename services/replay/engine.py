"""The projector's engine as a rebuild runs it: the sole writer of a new file, so rows stay in memory
between batches (a batch reads back from SQLite only rows it has not seen) and, with every row kept,
its transactions go to a writer process, committed there while the next batch folds here."""

from __future__ import annotations

from typing import Sequence, TypeVar

import aiosqlite

from ..kernel.events import Codec
from ..kernel.messages import Stored
from ..projector.apply import Needs, Rows
from ..projector.engine import Fetch, Folded, Projector
from ..projector.store import Statements
from ..projector.views import DeadLetter
from .writer import Writer

R = TypeVar("R")


class Rebuild(Projector):
    def __init__(
        self,
        db: aiosqlite.Connection,
        codec: Codec,
        keep_rows: int,
        writer: Writer | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        super().__init__(db, codec, relay=False, fetch=fetch)
        self.keep_rows = keep_rows  # up to this many rows stay in memory between batches
        self.writer = writer  # only with every row kept: nothing is read back from the file meanwhile
        self._kept = Rows()
        self._kept_all = False  # every row the file has is in _kept: nothing to load

    async def open(self) -> Rebuild:
        await super().open()
        self._kept_all = self.keep_rows > 0 and self.checkpoint == 0  # a new file has no rows yet
        return self

    async def apply_batch(self, batch: Sequence[Stored]) -> list[DeadLetter]:
        """Apply a batch in one transaction, committed when this returns (with a writer: by `settle`)."""
        try:
            return await super().apply_batch(batch)
        except BaseException:
            self._forget()  # kept rows may hold what was not written
            raise

    async def settle(self) -> None:
        """Every batch applied is committed when this returns; the writer process, if any, is done."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            await writer.close()

    async def _fold(self, batch: Sequence[Stored]) -> Folded | None:
        if not self._kept_all:
            folded = await super()._fold(batch)
        elif fresh := self._fresh(batch):
            # Every row there is is kept (a new file): the batch folds into the kept rows as it decodes.
            originals = await self._originals(fresh)
            folded = self._folded(self._kept_view(), fresh)
            self._apply(folded, self._decoded(fresh), originals)
        else:
            folded = None
        if folded is not None:
            self._keep(folded.rows)
        return folded

    def _kept_view(self) -> Rows:
        """Rows that are the kept rows themselves, with nothing dirty yet."""
        kept = self._kept
        return Rows(relay=self.relay, tasks=kept.tasks, jobs=kept.jobs, projects=kept.projects, photos=kept.photos)

    async def _load(self, wanted: Needs) -> Rows:
        """The kept rows `wanted` names, and the others from the file once everything is written there."""
        await self.settle()
        kept = self._kept
        rows = await super()._load(
            Needs(
                _unkept(wanted.tasks, kept.tasks),
                _unkept(wanted.jobs, kept.jobs),
                _unkept(wanted.projects, kept.projects),
                _unkept(wanted.photos, kept.photos),
            )
        )
        _take(rows.tasks, kept.tasks, wanted.tasks)
        _take(rows.jobs, kept.jobs, wanted.jobs)
        _take(rows.projects, kept.projects, wanted.projects)
        _take(rows.photos, kept.photos, wanted.photos)
        return rows

    def _keep(self, rows: Rows) -> None:
        if not self.keep_rows:
            return
        kept = self._kept
        if rows.tasks is not kept.tasks:
            kept.tasks.update(rows.tasks)
            kept.jobs.update(rows.jobs)
            kept.projects.update(rows.projects)
            kept.photos.update(rows.photos)
        if len(kept.tasks) + len(kept.jobs) + len(kept.projects) + len(kept.photos) > self.keep_rows:
            self._forget()

    def _forget(self) -> None:
        """From here on, rows come from the file again."""
        self._kept = Rows()
        self._kept_all = False

    async def _commit(self, statements: Statements) -> None:
        if self.writer is not None:
            await self.writer.write(statements)
        else:
            await super()._commit(statements)


def _unkept(ids: set[str], kept: dict[str, R | None]) -> set[str]:
    return {i for i in ids if i not in kept}


def _take(rows: dict[str, R | None], kept: dict[str, R | None], ids: set[str]) -> None:
    rows.update({i: kept[i] for i in ids if i in kept})
