"""`darkroom backup DEST` and `darkroom restore SRC --data DIR`: a consistent copy of the log (a
JetStream snapshot), the read model (SQLite's online backup) and the project folders, with a
manifest of versions, sequences and every file's hash; and the way back into an empty data folder.

Consistent: the read model is copied first, so it holds a prefix of the copied log (the projector
folds the rest after a restore); each project folder is copied holding its file lease, so no
commit or trash restore moves a file half-way through; a file that lands after the log's copy is
an extra that maintenance adopts, never a missing original."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from contextlib import AbstractAsyncContextManager, closing
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

import msgspec

from .kernel.bus import Bus
from .kernel.lease import LeaseBusy
from .kernel.manifest import read_manifest
from .kernel.photos import is_upload_temp
from .kernel.snapshot import Snapshot, chunks_of, durable_places, make_durables, snapshot
from .kernel.snapshot import restore as restore_stream
from .kernel.subjects import STREAM
from .projector.store import read_model_path

FORMAT = 1
MANIFEST_FILE = "manifest.json"
STREAM_FILE = f"stream/{STREAM}.snapshot"
FOLDERS = ("projects", "trash")  # under the data folder: the project folders, deleted projects
LEASE_WAIT_S = 600.0
BLOCK = 1 << 20

Hold = Callable[[str, str, None, float], AbstractAsyncContextManager]  # Leases.hold


class BackupError(Exception):
    """A backup or restore that cannot go on; the message names what and why."""


class Entry(msgspec.Struct, frozen=True):
    path: str  # relative to the backup folder
    size: int
    sha256: str
    mtime_ns: int = 0


class StreamCopy(msgspec.Struct, frozen=True):
    name: str
    file: str
    first_seq: int
    last_seq: int
    messages: int
    bytes: int
    consumers: list[dict]  # the lanes' and orchestrators' configurations and places
    config: dict
    state: dict


class ReadModelCopy(msgspec.Struct, frozen=True):
    file: str
    checkpoint: int


class BackupManifest(msgspec.Struct, frozen=True):
    format: int
    created_at: str
    darkroom_version: str
    nats_server_version: str
    stream: StreamCopy
    read_model: ReadModelCopy | None
    files: list[Entry]


# -- backup ---------------------------------------------------------------------------------------


async def backup(bus: Bus, data_dir: Path, dest: Path, hold: Hold) -> BackupManifest:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} is not an empty folder: a backup goes into a new one")
    dest.mkdir(parents=True, exist_ok=True)
    entries: list[Entry] = []
    read_model = None
    live = read_model_path(data_dir)
    if live.is_file():  # first: a prefix of the log copied next
        checkpoint = await asyncio.to_thread(_copy_sqlite, live, dest / live.name)
        read_model = ReadModelCopy(live.name, checkpoint)
        entries.append(await asyncio.to_thread(_entry, dest, live.name))
    (dest / STREAM_FILE).parent.mkdir(parents=True)
    places = await durable_places(bus.nc, STREAM)
    with (dest / STREAM_FILE).open("wb") as out:
        snap = await snapshot(bus.nc, STREAM, out)
    entries.append(Entry(STREAM_FILE, snap.size, snap.sha256))
    for name in FOLDERS:
        root = data_dir / name
        for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            entries += await _copy_project(folder, dest / name / folder.name, f"{name}/{folder.name}", hold)
    made = BackupManifest(
        format=FORMAT,
        created_at=_now(),
        darkroom_version=_version(),
        nats_server_version=str(bus.nc.connected_server_version),
        stream=_stream_copy(snap, places),
        read_model=read_model,
        files=entries,
    )
    # Last, and whole or not at all: a backup folder with a manifest is a complete backup.
    partial = dest / f".{MANIFEST_FILE}.partial"
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(made)))
    os.replace(partial, dest / MANIFEST_FILE)
    return made


def _stream_copy(snap: Snapshot, consumers: list[dict]) -> StreamCopy:
    state = snap.state
    return StreamCopy(
        name=STREAM,
        file=STREAM_FILE,
        first_seq=state.get("first_seq", 0),
        last_seq=state.get("last_seq", 0),
        messages=state.get("messages", 0),
        bytes=state.get("bytes", 0),
        consumers=consumers,
        config=snap.config,
        state=state,
    )


def _copy_sqlite(source: Path, target: Path) -> int:
    """SQLite's online backup: a consistent copy while the projector writes; returns its checkpoint."""
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
        row = dst.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    return int(row[0]) if row else 0


async def _copy_project(folder: Path, target: Path, prefix: str, hold: Hold) -> list[Entry]:
    manifest = read_manifest(folder)
    if manifest is None:  # a folder made by hand, not adopted yet: nothing moves its files
        return await asyncio.to_thread(_copy_tree, folder, target, prefix)
    try:
        async with hold(manifest.id, "backup", None, LEASE_WAIT_S):
            return await asyncio.to_thread(_copy_tree, folder, target, prefix)
    except LeaseBusy:
        raise BackupError(f"{folder} stayed busy with a file operation for {LEASE_WAIT_S:g}s; try again") from None


def _copy_tree(folder: Path, target: Path, prefix: str) -> list[Entry]:
    entries = []
    for source in _files(folder):
        relative = source.relative_to(folder)
        try:
            entries.append(_copy(source, target / relative, f"{prefix}/{relative.as_posix()}"))
        except FileNotFoundError:  # purged from a trash meanwhile
            continue
    return entries


def _files(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if not is_upload_temp(name):  # a file still arriving is not part of any event yet
                yield Path(root) / name


def _copy(source: Path, target: Path, path: str) -> Entry:
    """Copy with the hash taken from the bytes written, and the mtime kept (derivatives record it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src, target.open("wb") as dst:
        mtime_ns = os.fstat(src.fileno()).st_mtime_ns
        while block := src.read(BLOCK):
            dst.write(block)
            digest.update(block)
            size += len(block)
    os.utime(target, ns=(mtime_ns, mtime_ns))
    return Entry(path, size, digest.hexdigest(), mtime_ns)


def _entry(base: Path, path: str) -> Entry:
    file = base / path
    return Entry(path, file.stat().st_size, _sha256(file))


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as src:
        while block := src.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _version() -> str:
    try:
        return metadata.version("darkroom")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- restore --------------------------------------------------------------------------------------


def verify(src: Path) -> BackupManifest:
    """The backup's manifest once every file it lists is there with its size and hash."""
    try:
        made = msgspec.json.decode((src / MANIFEST_FILE).read_bytes(), type=BackupManifest)
    except FileNotFoundError:
        raise BackupError(f"{src} has no {MANIFEST_FILE}: not a backup, or one that did not finish") from None
    except msgspec.DecodeError as exc:
        raise BackupError(f"{src / MANIFEST_FILE} is unreadable: {exc}") from None
    if made.format != FORMAT:
        raise BackupError(f"{src} is a backup of format {made.format}; this Darkroom restores format {FORMAT}")
    for entry in made.files:
        file = src / entry.path
        if not file.is_file() or file.stat().st_size != entry.size or _sha256(file) != entry.sha256:
            raise BackupError(
                f"{file} is missing or not what the backup wrote (size or SHA-256 differs): the backup is damaged"
            )
    return made


def check_empty(data_dir: Path) -> None:
    """A restore goes into a new data folder: nothing there but, at most, its configuration."""
    found = sorted(p.name for p in data_dir.iterdir() if p.name != "darkroom.toml") if data_dir.is_dir() else []
    if found:
        raise BackupError(f"{data_dir} is not empty ({', '.join(found[:5])}): restore into a new data folder")


async def restore(made: BackupManifest, src: Path, data_dir: Path, bus: Bus, replicas: int) -> dict:
    """The stream first (a server that has one refuses), then the folders and the read model."""
    config = dict(made.stream.config, num_replicas=replicas)
    with (src / made.stream.file).open("rb") as chunks:
        info = await restore_stream(bus.nc, STREAM, config, made.stream.state, chunks_of(chunks))
    await make_durables(bus.nc, STREAM, made.stream.consumers, replicas)
    await asyncio.to_thread(_restore_files, made, src, data_dir)
    return info


def _restore_files(made: BackupManifest, src: Path, data_dir: Path) -> None:
    for entry in made.files:
        if entry.path == made.stream.file:
            continue
        target = data_dir / entry.path
        if made.read_model is not None and entry.path == made.read_model.file:
            target = read_model_path(data_dir)
        if _copy(src / entry.path, target, entry.path).sha256 != entry.sha256:  # the mtime comes along
            raise BackupError(f"{src / entry.path} changed while it was restored")
