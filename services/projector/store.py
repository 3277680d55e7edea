"""The SQLite read models: schema, and loading and writing rows of a view Struct."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Sequence, TypeVar, cast

import aiosqlite
import msgspec

from ..kernel.vocabulary import COUNTED_STATES
from .views import JobView, LaneRow, PhotoView, ProjectRow, RefusedFolder, TaskView, TrashRow

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")
Row = tuple[Any, ...]  # one row's values, as SQLite takes them
Statements = list[tuple[str, list[Row]]]  # one transaction: each SQL with the parameters of its rows
_JSON = msgspec.json.Encoder()

# The counts' index leaves out completed and canceled jobs (which most jobs end as).
COUNTED = ", ".join(f"'{state}'" for state in COUNTED_STATES)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY, type TEXT, label TEXT, user_relevant INTEGER, source TEXT, project_id TEXT,
  folder TEXT, status TEXT, step_index INTEGER, steps TEXT, cancel_requested INTEGER, created_at TEXT,
  started_at TEXT, finished_at TEXT, error TEXT, updated_at TEXT, maintenance INTEGER, retry_of TEXT,
  start_step INTEGER, retried_by TEXT);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at, id);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, created_at);
CREATE INDEX IF NOT EXISTS tasks_project ON tasks (project_id, created_at);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, task_id TEXT, task_type TEXT, source TEXT, type TEXT, project_id TEXT, folder TEXT,
  priority INTEGER, lane TEXT, status TEXT, step_index INTEGER, attempts INTEGER, progress_done INTEGER,
  progress_total INTEGER, error TEXT, created_at TEXT, started_at TEXT, finished_at TEXT, updated_at TEXT,
  maintenance INTEGER);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_task ON jobs (task_id, step_index);
CREATE INDEX IF NOT EXISTS jobs_counted ON jobs (status, lane, type) WHERE status IN ({COUNTED});
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER NOT NULL, k INTEGER NOT NULL, event TEXT NOT NULL, project_id TEXT, folder TEXT,
  maintenance INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (seq, k)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS projects (
  id TEXT PRIMARY KEY, folder TEXT, name TEXT, created_at TEXT, updated_at TEXT, manifest_version INTEGER,
  photo_count INTEGER, pending_photos INTEGER, pending_jpg INTEGER, pending_raw INTEGER, pending_other INTEGER,
  deleted_at TEXT);
CREATE INDEX IF NOT EXISTS projects_folder ON projects (folder);
CREATE TABLE IF NOT EXISTS photos (
  id TEXT PRIMARY KEY, project_id TEXT, filename TEXT, files TEXT, jpg_available INTEGER, raw_available INTEGER,
  other_available INTEGER, keep_jpg INTEGER, keep_raw INTEGER, keep_other INTEGER, thumbnail_status TEXT,
  preview_status TEXT, taken_at TEXT, make TEXT, model TEXT, lens TEXT, width INTEGER, height INTEGER,
  orientation INTEGER, error TEXT, error_kind TEXT, made_from TEXT, made_from_size INTEGER, made_from_mtime_ns INTEGER,
  moving_to TEXT, created_at TEXT, updated_at TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS photos_name ON photos (project_id, filename);
CREATE INDEX IF NOT EXISTS photos_order ON photos (project_id, taken_at IS NULL, taken_at, filename);
CREATE TABLE IF NOT EXISTS trash (
  id TEXT PRIMARY KEY, project_id TEXT, trash_name TEXT, name TEXT, filename TEXT, trashed_at TEXT);
CREATE INDEX IF NOT EXISTS trash_project ON trash (project_id, trashed_at);
CREATE TABLE IF NOT EXISTS refused_folders (folder TEXT PRIMARY KEY, reason TEXT, at TEXT);
CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY, subject TEXT, reason TEXT, at TEXT);
CREATE TABLE IF NOT EXISTS lanes (lane TEXT PRIMARY KEY, paused INTEGER, updated_at TEXT);
"""

READ_MODEL_FILE = "read-model.sqlite"  # in the data folder
WORKER_READ_MODEL_FILE = "read-model-worker.sqlite"
CHECKPOINT = "checkpoint"
PRUNED_THROUGH = "outbox_pruned_through"


@dataclass(frozen=True)
class Table(Generic[S]):
    name: str
    view: type[S]
    json_fields: frozenset[str] = frozenset()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.view.__struct_fields__

    @cached_property
    def _json_positions(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.columns) if c in self.json_fields)

    def to_row(self, item: S) -> Row:
        values = msgspec.structs.astuple(item)  # views hold plain values, and lists as JSON columns
        if not self._json_positions:
            return values
        row = list(values)
        for i in self._json_positions:
            row[i] = _JSON.encode(row[i]).decode()
        return tuple(row)

    @cached_property
    def _id_position(self) -> int:
        return self.columns.index("id")

    def key_of(self, row: Sequence[Any]) -> str:
        """A row's id, as the file has it."""
        return str(row[self._id_position])

    def from_row(self, row: Iterable[Any]) -> S:
        data = dict(zip(self.columns, row))
        for name in self.json_fields:
            data[name] = msgspec.json.decode(data[name]) if data[name] is not None else None
        return msgspec.convert(data, self.view, strict=False)

    def select(self, where: str = "", suffix: str = "") -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.name} {where} {suffix}"

    def upsert(self) -> str:
        marks = ", ".join("?" * len(self.columns))
        return f"INSERT OR REPLACE INTO {self.name} ({', '.join(self.columns)}) VALUES ({marks})"


TASKS = Table("tasks", TaskView, frozenset({"steps"}))
JOBS = Table("jobs", JobView)
PROJECTS = Table("projects", ProjectRow)
PHOTOS = Table("photos", PhotoView, frozenset({"files"}))
TRASH = Table("trash", TrashRow)
LANES = Table("lanes", LaneRow)
REFUSED = Table("refused_folders", RefusedFolder)
# Tables that replay must rebuild exactly, with the column that orders them.
COMPARED = {
    "tasks": "id",
    "jobs": "id",
    "projects": "id",
    "photos": "id",
    "trash": "id",
    "refused_folders": "folder",
    "dead_letters": "seq",
    "lanes": "lane",
}


def read_model_path(data_dir: Path) -> Path:
    """The data folder's read model, which its projector keeps."""
    return data_dir / READ_MODEL_FILE


def worker_read_model_path(data_dir: Path) -> Path:
    """The replica workers keep where no projector keeps the data folder's read model."""
    return data_dir / WORKER_READ_MODEL_FILE


async def open_db(path: Path | str, readonly: bool = False) -> aiosqlite.Connection:
    db = await aiosqlite.connect(f"file:{path}?mode=ro" if readonly else path, uri=readonly)
    # First: services started together on one file (api, worker, projector) wait for each other.
    await db.execute("PRAGMA busy_timeout=5000")
    if not readonly:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(SCHEMA)
        await db.commit()
    return db


async def rebuild_if_outdated(db: aiosqlite.Connection) -> bool:
    """A read model written by a version whose rows had other columns is emptied, checkpoint included,
    so the projector folds the whole log into it again (read models are disposable; the log is not)."""
    for table in (TASKS, JOBS, PROJECTS, PHOTOS, TRASH, LANES, REFUSED):
        columns = tuple(row[1] for row in await db.execute_fetchall(f"PRAGMA table_info({table.name})"))
        if columns != table.columns:
            break
    else:
        return False
    await db.executescript("".join(f"DROP TABLE IF EXISTS {name};" for name in (*COMPARED, "outbox", "meta")) + SCHEMA)
    await db.commit()
    return True


async def in_thread(db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work` on the connection in its own thread, in one trip. aiosqlite makes a trip of each call,
    about 90 µs of CPU, where a statement of a batch takes a few: a batch's reads or writes go at once."""
    # aiosqlite's own way of running a call in its thread (its public calls go through it too).
    return cast(T, await db._execute(work, db._conn))  # type: ignore[no-untyped-call]


def rows_with(db: sqlite3.Connection, table: Table[S], column: str, values: list[str]) -> list[Row]:
    """The file's rows whose `column` is one of `values`, 500 values a statement (in the connection's thread)."""
    rows: list[Row] = []
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        rows += db.execute(table.select(f"WHERE {column} IN ({', '.join('?' * len(chunk))})"), chunk)
    return rows


def rows_of(db: sqlite3.Connection, table: Table[S], ids: list[str]) -> dict[str, S]:
    """The rows `ids` names that the file has (in the connection's thread)."""
    return {table.key_of(row): table.from_row(row) for row in rows_with(db, table, "id", ids)}


async def load_many(db: aiosqlite.Connection, table: Table[S], ids: Iterable[str]) -> dict[str, S]:
    ids = list(ids)
    return await in_thread(db, lambda conn: rows_of(conn, table, ids))


def load_into(db: sqlite3.Connection, table: Table[S], ids: set[str], into: dict[str, S | None]) -> None:
    """The rows `ids` names into `into`, None for those the file does not have (in the connection's thread)."""
    if ids:
        into.update(dict.fromkeys(ids))
        into.update(rows_of(db, table, list(ids)))


def upsert(table: Table[S], ids: set[str], items: dict[str, S | None]) -> list[tuple[str, list[Row]]]:
    """The statement that writes these rows (none for no rows)."""
    rows = [table.to_row(item) for i in ids if (item := items[i]) is not None]
    return [(table.upsert(), rows)] if rows else []


async def get_meta(db: aiosqlite.Connection, key: str) -> int:
    rows = list(await db.execute_fetchall("SELECT value FROM meta WHERE key = ?", (key,)))
    return int(rows[0][0]) if rows else 0
