"""Reading the read models: tasks, jobs, the SSE outbox, and waiting for a sequence."""

from __future__ import annotations

import asyncio
import re
from bisect import bisect_right
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Sequence

import aiosqlite

from ..kernel.supervise import Loops
from ..kernel.vocabulary import OPEN_TASK
from . import store
from .store import (
    CHECKPOINT,
    COUNTED,
    JOBS,
    LANES,
    PHOTOS,
    PROJECTS,
    PRUNED_THROUGH,
    REFUSED,
    TASKS,
    TRASH,
    Row,
    S,
    Table,
)
from .views import DeadLetter, JobView, LaneRow, PhotoView, ProjectRow, RefusedFolder, TaskView, TrashRow

POLL_S = 0.02  # when the projector is another process; in the same one it pokes the reader
NOTIFIED_POLL_S = 1.0
# How long a decision made from the read model waits for it to reach the log's end: a replica taking
# over after a NATS node died catches up within this.
CATCH_UP_S = 5.0
POLL_LOOP = "read model poll"
# The states as written in the counts' index (a partial index is used only for its own condition).
JOB_COUNTS = f"SELECT lane, type, status, COUNT(*) FROM jobs WHERE status IN ({COUNTED}) GROUP BY status, lane, type"
AFTER_EVERYTHING = 1 << 30  # an outbox `k` past any event's messages: (seq, AFTER_EVERYTHING) is after all of seq


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    k: int
    event: str
    data: str
    project_id: str | None = None  # whose message it is: None for one every stream shows
    maintenance: bool = False

    @property
    def position(self) -> tuple[int, int]:
        return self.seq, self.k

    @property
    def id(self) -> str:
        return str(self.seq) if self.k == 0 else f"{self.seq}.{self.k}"


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """`123` or `123.2` → (123, 2); anything else means no usable resume point."""
    match = _EVENT_ID.fullmatch(value.strip()) if value else None
    if match is None:
        return None
    return int(match[1]), min(int(match[2] or 0), AFTER_EVERYTHING)  # a k past every message: after them all


_EVENT_ID = re.compile(r"(\d{1,18})(?:\.(\d*))?", re.ASCII)  # a sequence SQLite can compare; k any length


class OutboxTail:
    """The outbox rows this process's projector committed lately, as written (seq, k, event,
    project_id, folder, maintenance, data): a caught-up SSE client reads its next rows here, where
    a query per client and commit would cost each open page CPU for every task."""

    KEEP = 4096

    def __init__(self, checkpoint: int) -> None:
        self.since = (checkpoint, AFTER_EVERYTHING)  # every row after this position is here
        self.rows: list[Row] = []

    def extend(self, rows: Sequence[Row]) -> None:
        self.rows.extend(rows)
        if len(self.rows) > 2 * self.KEEP:  # trimmed in bulk: dropping a list's head costs its length
            cut = len(self.rows) - self.KEEP
            self.since = _position(self.rows[cut - 1])
            del self.rows[:cut]

    def covers(self, after: tuple[int, int]) -> bool:
        return after >= self.since

    def after(
        self, after: tuple[int, int], *, project_id: str | None, show_maintenance: bool, limit: int
    ) -> list[OutboxRow]:
        found = []
        for seq, k, event, row_project, _, maintenance, data in self.rows[
            bisect_right(self.rows, after, key=_position) :
        ]:
            if (project_id is None or row_project == project_id) and (show_maintenance or not maintenance):
                found.append(OutboxRow(seq, k, event, data, row_project, bool(maintenance)))
                if len(found) == limit:
                    break
        return found


_position = itemgetter(0, 1)


class ReadModel:
    """A reader of the projector's SQLite file; knows how far the projector has applied the log."""

    def __init__(self, db: aiosqlite.Connection, loops: Loops | None = None) -> None:
        self.db = db
        self.loops = loops or Loops()
        self.checkpoint = 0
        self._moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._poller: asyncio.Task[None] | None = None
        self.poll_s = POLL_S
        self.tail: OutboxTail | None = None  # see follow_projector
        self.watchers: list[Callable[[], None]] = []  # told of each move of the checkpoint, as it happens

    @classmethod
    async def open(cls, path: Path, loops: Loops | None = None) -> ReadModel:
        model = cls(await store.open_db(path), loops)
        model.checkpoint = await store.get_meta(model.db, CHECKPOINT)
        model._poller = model.loops.spawn(POLL_LOOP, model._poll)
        return model

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        await self.db.close()

    def follow_projector(self, checkpoint: int) -> None:
        """The projector runs in this process and tells of each commit, its outbox rows with it: the
        poll stops (seeing a commit before those rows, an SSE client would wait for the next one),
        and caught-up SSE clients read from the tail from `checkpoint` on."""
        self.tail = OutboxTail(checkpoint)
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self._advance(checkpoint)  # what it committed before it could tell: no later commit may come

    def applied(self, seq: int, outbox: Sequence[Row] = ()) -> None:
        """Called in-process by the projector after each commit: waiters wake without a query."""
        if self.tail is not None:
            self.tail.extend(outbox)
        self._advance(seq)

    def _advance(self, seq: int) -> None:
        if seq <= self.checkpoint:
            return
        self.checkpoint = seq
        moved, self._moved = self._moved, asyncio.get_running_loop().create_future()
        moved.set_result(None)
        for watcher in self.watchers:
            watcher()

    async def _poll(self) -> None:
        # Another process may be the projector: its commits are seen by polling the checkpoint.
        while True:
            await asyncio.sleep(self.poll_s)
            self._advance(await self.loops.retry(POLL_LOOP, lambda: store.get_meta(self.db, CHECKPOINT)))

    async def _until(self, reached: Callable[[], bool], timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not reached():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(asyncio.shield(self._moved), remaining)
            except TimeoutError:
                return False
        return True

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """True once the read model has applied `seq`."""
        return await self._until(lambda: self.checkpoint >= seq, timeout)

    async def wait_change(self, since: int, timeout: float) -> None:
        await self._until(lambda: self.checkpoint > since, timeout)

    # -- tasks and jobs ------------------------------------------------------------------------

    async def task(self, task_id: str) -> TaskView | None:
        return (await store.load_many(self.db, TASKS, [task_id])).get(task_id)

    async def tasks(
        self,
        *,
        project_id: str | None = None,
        type: str | None = None,
        status: str | None = None,
        show_maintenance: bool = False,
        limit: int = 100,
        retried: bool | None = None,
    ) -> list[TaskView]:
        where, args = _filters(project_id=project_id, type=type, status=status, show_maintenance=show_maintenance)
        if retried is not None:  # with a retry made of it, or without
            where += f"{' AND' if where else 'WHERE'} retried_by IS {'NOT ' if retried else ''}NULL"
        sql = TASKS.select(where, "ORDER BY created_at DESC, id DESC LIMIT ?")
        return await self._fetch(TASKS, sql, [*args, limit])

    async def open_tasks(self, project_id: str) -> list[TaskView]:
        """The project's tasks that have not ended: queued or running."""
        sql = TASKS.select(f"WHERE project_id = ? AND status IN ({', '.join(repr(s) for s in OPEN_TASK)})")
        return await self._fetch(TASKS, sql, [project_id])

    async def running_jobs(self, project_id: str) -> list[JobView]:
        """The project's jobs a worker is running now."""
        return await self._fetch(JOBS, JOBS.select("WHERE project_id = ? AND status = 'running'"), [project_id])

    async def jobs_of(self, task_id: str) -> list[JobView]:
        return await self._fetch(JOBS, JOBS.select("WHERE task_id = ?", "ORDER BY step_index"), [task_id])

    async def jobs(
        self,
        *,
        project_id: str | None = None,
        type: str | None = None,
        status: str | None = None,
        show_maintenance: bool = False,
        limit: int = 100,
    ) -> list[JobView]:
        where, args = _filters(project_id=project_id, type=type, status=status, show_maintenance=show_maintenance)
        sql = JOBS.select(where, "ORDER BY created_at DESC, id DESC LIMIT ?")
        return await self._fetch(JOBS, sql, [*args, limit])

    async def _fetch(self, table: Table[S], sql: str, args: list[Any]) -> list[S]:
        return await store.in_thread(self.db, lambda db: [table.from_row(row) for row in db.execute(sql, args)])

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        # One trip to aiosqlite's thread: a cursor's execute, fetch and close are a trip each.
        return await store.in_thread(self.db, lambda db: db.execute(sql, args).fetchall())

    async def _count(self, sql: str, args: Sequence[Any] = ()) -> int:
        rows = await self._rows(sql, args)
        return int(rows[0][0]) if rows else 0

    async def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        sql = "SELECT seq, subject, reason, at FROM dead_letters ORDER BY seq DESC LIMIT ?"
        return [DeadLetter(*row) for row in await self._rows(sql, (limit,))]

    async def dead_letter_count(self) -> int:
        return await self._count("SELECT COUNT(*) FROM dead_letters")

    async def dead_letter(self, seq: int) -> DeadLetter | None:
        rows = await self._rows("SELECT seq, subject, reason, at FROM dead_letters WHERE seq = ?", (seq,))
        return DeadLetter(*rows[0]) if rows else None

    async def lanes(self) -> dict[str, LaneRow]:
        """Each lane's state, as its newest pause or resume left it (a lane never paused has no row)."""
        return {row.lane: row for row in await self._fetch(LANES, LANES.select(), [])}

    async def job_counts(self) -> list[tuple[str, str, str, int]]:
        """(lane, job type, status, how many) of the jobs queued, running, retrying or failed: one query
        over the index that holds only those."""
        return [(row[0], row[1], row[2], row[3]) for row in await self._rows(JOB_COUNTS)]

    # -- projects and photos ---------------------------------------------------------------------

    async def projects(self) -> list[ProjectRow]:
        """The projects there are: not the deleted ones."""
        return await self._fetch(
            PROJECTS, PROJECTS.select("WHERE deleted_at IS NULL", "ORDER BY created_at DESC, id"), []
        )

    async def deleted_projects(self) -> list[ProjectRow]:
        """Projects in DIR/trash/, the one deleted first first."""
        sql = PROJECTS.select("WHERE deleted_at IS NOT NULL", "ORDER BY deleted_at, id")
        return await self._fetch(PROJECTS, sql, [])

    async def project_by_folder(self, folder: str) -> ProjectRow | None:
        found = await self._fetch(PROJECTS, PROJECTS.select("WHERE folder = ? AND deleted_at IS NULL"), [folder])
        return found[0] if found else None

    async def project(self, project_id: str) -> ProjectRow | None:
        """The project with this id, deleted or not (`deleted_at` says)."""
        return (await store.load_many(self.db, PROJECTS, [project_id])).get(project_id)

    async def refused_folders(self) -> list[RefusedFolder]:
        return await self._fetch(REFUSED, REFUSED.select("", "ORDER BY folder"), [])

    async def photo(self, project_id: str, filename: str) -> PhotoView | None:
        found = await self._fetch(
            PHOTOS, PHOTOS.select("WHERE project_id = ? AND filename = ?"), [project_id, filename]
        )
        return found[0] if found else None

    async def photos_named(self, filenames: list[str]) -> list[PhotoView]:
        """Photos with these basenames in any project: a basename lives in one project only."""
        return await store.in_thread(
            self.db, lambda db: [PHOTOS.from_row(row) for row in store.rows_with(db, PHOTOS, "filename", filenames)]
        )

    async def photos(
        self, project_id: str, limit: int = 100, after: tuple[int, str, str] | None = None
    ) -> list[PhotoView]:
        """Ordered by taken_at (undated last) then filename; `after` is the last row's sort key."""
        where = "WHERE project_id = ?"
        args: list[Any] = [project_id]
        if after is not None:
            where += (
                " AND ((taken_at IS NULL) > ? OR ((taken_at IS NULL) = ? AND (IFNULL(taken_at, '') > ? "
                "OR (IFNULL(taken_at, '') = ? AND filename > ?))))"
            )
            args += [after[0], after[0], after[1], after[1], after[2]]
        sql = PHOTOS.select(where, "ORDER BY taken_at IS NULL, taken_at, filename LIMIT ?")
        return await self._fetch(PHOTOS, sql, [*args, limit])

    async def all_photos(self, project_id: str) -> list[PhotoView]:
        return await self._fetch(PHOTOS, PHOTOS.select("WHERE project_id = ?", "ORDER BY filename"), [project_id])

    async def trash(self, project_id: str) -> list[TrashRow]:
        return await self._fetch(
            TRASH, TRASH.select("WHERE project_id = ?", "ORDER BY trashed_at, trash_name"), [project_id]
        )

    async def missing_derivatives(self, project_id: str) -> int:
        sql = (
            "SELECT COUNT(*) FROM photos WHERE project_id = ? "
            "AND thumbnail_status NOT IN ('generated', 'not_supported')"
        )
        return await self._count(sql, (project_id,))

    # -- SSE outbox ------------------------------------------------------------------------------

    async def pruned_through(self) -> int:
        return await store.get_meta(self.db, PRUNED_THROUGH)

    async def outbox_after(
        self, after: tuple[int, int], *, project_id: str | None, show_maintenance: bool, limit: int = 500
    ) -> list[OutboxRow]:
        """The SSE messages after `after`: all, or one project's (by id: a page follows its project
        through a rename)."""
        if self.tail is not None and self.tail.covers(after):
            return self.tail.after(after, project_id=project_id, show_maintenance=show_maintenance, limit=limit)
        sql = "SELECT seq, k, event, data, project_id, maintenance FROM outbox WHERE (seq > ? OR (seq = ? AND k > ?))"
        args: list[Any] = [after[0], after[0], after[1]]
        if project_id is not None:
            sql += " AND project_id = ?"
            args.append(project_id)
        if not show_maintenance:
            sql += " AND maintenance = 0"
        sql += " ORDER BY seq, k LIMIT ?"
        args.append(limit)
        return [
            OutboxRow(seq, k, event, data, project, bool(m))
            for seq, k, event, data, project, m in await self._rows(sql, args)
        ]


def _filters(
    *, project_id: str | None, type: str | None, status: str | None, show_maintenance: bool
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("project_id", project_id), ("type", type), ("status", status)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if not show_maintenance:
        clauses.append("maintenance = 0")
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args
