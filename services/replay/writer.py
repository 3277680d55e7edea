"""A rebuild's SQLite writes, in a child process of their own: they were a large share of the
rebuild's time on its one busy core, and threads of one process cannot share that (the GIL),
processes can. Imports only its frames and the projector's `transact` at run time (no read model,
no NATS), so it starts fast.

    python -m darkroom.replay.writer PATH

Reads frames (replay/frames.py) from stdin, each a msgpack list of [sql, [params, ...]]: one
transaction, committed before the next is read. Exits 0 at the end of stdin, 1 (and why, on stderr)
at the first failure.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ..projector.transaction import transact
from .frames import FrameWriter, pipe, spawn

if TYPE_CHECKING:
    from ..projector.store import Statements

_FRAME = msgspec.msgpack.Decoder(list[tuple[str, list[list]]])


class WriteError(Exception):
    """The writer process could not write a batch; the file holds the batches before it."""


class Writer:
    """The parent's side: transactions go to the child as they come, and `close` waits for all of
    them to be committed."""

    def __init__(self, child: asyncio.subprocess.Process, frames: FrameWriter) -> None:
        self._child = child
        self._frames = frames
        self._encoder = msgspec.msgpack.Encoder()

    @classmethod
    async def start(cls, path: Path) -> Writer:
        read_end, write_end = pipe()
        try:
            child = await spawn(sys.modules[__name__], str(path), stdin=read_end)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)  # the child's now
        return cls(child, FrameWriter(write_end))

    async def write(self, statements: Statements) -> None:
        try:
            await self._frames.write(self._encoder.encode(statements))
        except BrokenPipeError:
            raise await self._failure() from None

    async def close(self) -> None:
        """Waits until every transaction written is committed; WriteError if one was not."""
        self._frames.close()
        if await self._child.wait() != 0:
            raise await self._failure()

    async def abort(self) -> None:
        """Stops the child at once: the file keeps the transactions it committed, each whole."""
        self._frames.close()
        if self._child.returncode is None:
            self._child.kill()
        await self._child.wait()

    async def _failure(self) -> WriteError:
        stderr = self._child.stderr
        why = (await stderr.read()).decode(errors="replace").strip() if stderr is not None else ""
        return WriteError(why or f"the writer exited with {await self._child.wait()}")


def run(db: sqlite3.Connection, stdin) -> None:
    while head := stdin.read(4):
        transact(db, _FRAME.decode(stdin.read(int.from_bytes(head, "big"))))


def main(argv: list[str]) -> int:
    (path,) = argv
    try:
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA synchronous=OFF")  # as the rebuild: its file is made durable once, at the end
            run(db, sys.stdin.buffer)
        finally:
            db.close()
    except (sqlite3.Error, msgspec.DecodeError) as exc:
        print(f"writer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
