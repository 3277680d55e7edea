"""SSE fan-out: the outbox rows of each projector commit read once, each message encoded once, and
handed to every stream that shows it through a bounded queue of its own."""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from ..kernel.supervise import Loops
from ..projector.queries import AFTER_EVERYTHING, OutboxRow, ReadModel

Position = tuple[int, int]  # (seq, k) of an outbox row, as in its SSE id
Kind = tuple[str | None, bool]  # a stream's filters: (project id or None for all, show_maintenance)

FEED_PAGE = 5_000
FEED_LOOP = "sse fan-out"
PING_LOOP = "sse comment lines"
# How often queues are checked for being due, in place of a timer per queue and wait (re-armed on
# every wake, about a third of what 1,000 streams cost); a comment line is this much late at most.
DUE_EVERY_S = 0.25


def encode(row: OutboxRow) -> bytes:
    return f"id: {row.id}\nevent: {row.event}\ndata: {row.data}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive messages for one kind of stream, encoded once and shared by every queue of that kind."""

    positions: tuple[Position, ...]
    offsets: tuple[int, ...]  # where each message starts in `data`
    data: bytes

    @classmethod
    def of(cls, rows: list[OutboxRow], encoded: dict[Position, bytes]) -> Chunk:
        parts = [encoded[row.position] for row in rows]
        offsets, at = [], 0
        for part in parts:
            offsets.append(at)
            at += len(part)
        return cls(tuple(row.position for row in rows), tuple(offsets), b"".join(parts))

    def after(self, cursor: Position) -> bytes:
        """The messages past `cursor` (a queue that caught up from the outbox has some of them)."""
        if cursor < self.positions[0]:
            return self.data
        cut = bisect_right(self.positions, cursor)
        return self.data[self.offsets[cut] :] if cut < len(self.positions) else b""


class ClientQueue:
    """One client's queue: filled by the fan-out, emptied by its handler. Past `limit` bytes waiting
    (a client that does not read), it is `behind`: nothing more is queued, and its handler serves it
    from the outbox, where it left off, before it takes from the queue again."""

    def __init__(self, kind: Kind, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        self.chunks: list[Chunk] = []
        self.size = 0
        self.behind = False
        self.due = math.inf  # when its handler must write, if nothing comes (a comment line), monotonic
        self._waiter: asyncio.Future[None] | None = None

    def put(self, chunk: Chunk) -> bool:
        """Queues the chunk; True when that puts the queue behind."""
        if self.behind:
            return False
        self.size += len(chunk.data)
        if self.size > self.limit:
            self.behind = True
            self.chunks.clear()
            self.size = 0
        else:
            self.chunks.append(chunk)
        self.wake()
        return self.behind

    def take(self, cursor: Position) -> tuple[bytes, Position]:
        """What is queued past `cursor`, and the position of its last message."""
        chunks, self.chunks, self.size = self.chunks, [], 0
        parts = []
        for chunk in chunks:
            if chunk.positions[-1] > cursor:
                parts.append(chunk.after(cursor))
                cursor = chunk.positions[-1]
        return b"".join(parts), cursor

    def restart(self) -> None:
        """Queue again from now on: the handler reads from the outbox what came before."""
        self.behind = False
        self.chunks.clear()
        self.size = 0

    async def wait(self) -> None:
        """Until something is queued, the queue falls behind, it is `due`, or it is woken."""
        if self.chunks or self.behind or time.monotonic() >= self.due:
            return
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Fanout:
    """Follows the read model's outbox from where it was when started, for the queues open now:
    queues are indexed by what they show, so a commit costs its rows and the queues that get them."""

    def __init__(self, fell_behind: Callable[[], None] = lambda: None) -> None:
        self.fell_behind = fell_behind  # told each time a queue falls behind
        self.queues: dict[Kind, set[ClientQueue]] = defaultdict(set)
        self.cursor: Position = (0, AFTER_EVERYTHING)

    def open(self, project_id: str | None, show_maintenance: bool, limit: int) -> ClientQueue:
        """A client's queue, filled from now on; its handler reads from the outbox what came before."""
        queue = ClientQueue((project_id, show_maintenance), limit)
        self.queues[queue.kind].add(queue)
        return queue

    def close(self, queue: ClientQueue) -> None:
        queues = self.queues.get(queue.kind)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.queues[queue.kind]

    def wake_all(self) -> None:
        for queues in self.queues.values():
            for queue in queues:
                queue.wake()

    def start(self, read: ReadModel, loops: Loops) -> list[asyncio.Task[None]]:
        self.cursor = (read.checkpoint, AFTER_EVERYTHING)
        return [loops.spawn(FEED_LOOP, lambda: self.feed(read)), loops.spawn(PING_LOOP, self.wake_due)]

    async def wake_due(self) -> None:
        while True:
            await asyncio.sleep(DUE_EVERY_S)
            now = time.monotonic()
            for queues in self.queues.values():
                for queue in queues:
                    if queue.due <= now:
                        queue.wake()

    async def feed(self, read: ReadModel) -> None:
        """One read of the outbox per commit (a page at a time), handed to the open queues. The
        position is kept across a restart of the loop: no queue misses what it was reading."""
        changed = asyncio.Event()  # set by the read model as it moves: no timer, no task per commit
        read.watchers.append(changed.set)
        try:
            while True:
                changed.clear()
                if not self.queues:  # no one to hand them to: a queue that opens reads the outbox itself
                    self.cursor = max(self.cursor, (read.checkpoint, AFTER_EVERYTHING))
                    await changed.wait()
                    continue
                rows = await read.outbox_after(self.cursor, project_id=None, show_maintenance=True, limit=FEED_PAGE)
                if rows:
                    self.publish(rows)
                    self.cursor = rows[-1].position
                    if len(rows) == FEED_PAGE:
                        continue
                await changed.wait()
        finally:
            read.watchers.remove(changed.set)

    def publish(self, rows: list[OutboxRow]) -> None:
        """Each row to the queues of its project and to those of every project, encoded once."""
        encoded = {row.position: encode(row) for row in rows}
        by_project: dict[str | None, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            if row.project_id is not None:
                by_project[row.project_id].append(row)
        by_project[None] = rows
        for project_id, mine in by_project.items():
            for show_maintenance in (False, True):
                queues = self.queues.get((project_id, show_maintenance))
                if not queues:
                    continue
                shown = mine if show_maintenance else [row for row in mine if not row.maintenance]
                if not shown:
                    continue
                chunk = Chunk.of(shown, encoded)
                for queue in queues:
                    if queue.put(chunk):
                        self.fell_behind()
