"""Following the log live: every message from a sequence on, in order, once, whatever NATS does.

An ordered push consumer (ephemeral, in memory, flow-controlled, with idle heartbeats) is made
again from the next sequence whenever it may have lost its place: a gap in its delivery sequence,
missed heartbeats, or a reconnect (a restarted server has forgotten it). The reconnect is the common
case and is acted on at once; nats-py's own ordered consumer waits two heartbeat windows for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.nuid import NUID

from .bus import Bus
from .messages import Stored
from .provision import follow_config
from .subjects import ALL, STREAM
from .supervise import Loops

log = logging.getLogger("darkroom.follow")

HEARTBEAT_S = 1.0  # a consumer lost with its node (or server) is made again within about 2.5 s
MISSED_HEARTBEATS = 2  # silent this long (plus a little): the consumer is lost, make it again
STATUS, DESCRIPTION = "Status", "Description"
LAST_CONSUMER, STALLED = "Nats-Last-Consumer", "Nats-Consumer-Stalled"


class Follower:
    def __init__(
        self,
        bus: Bus,
        start_seq: int,
        handler: Callable[[Stored], None],
        loops: Loops,
        name: str = "follower",
        subject: str = ALL,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.bus = bus
        self.next_seq = max(1, start_seq)  # the stream sequence the handler gets next
        self.handler = handler
        self.loops = loops
        self.name = name
        self.subject = subject
        self.heartbeat_s = heartbeat_s
        self._consumer: str | None = None  # the consumer whose messages are taken; None while renewing
        self._inbox = ""
        self._dseq = 0  # its delivery sequence of the last message taken
        self._heard = time.monotonic()
        self._sub: Subscription | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._deleting: set[asyncio.Task[None]] = set()
        self._nuid = NUID()
        self._stopped = False

    @property
    def connected(self) -> bool:
        """A consumer is in place and was heard from lately."""
        return self._consumer is not None and time.monotonic() - self._heard <= self._silence_s

    @property
    def _silence_s(self) -> float:
        return self.heartbeat_s * MISSED_HEARTBEATS + 0.5

    async def start(self) -> None:
        await self._renew()  # at start-up a failure is the caller's to report
        self.bus.reconnected.append(self._on_reconnected)
        self._watch = self.loops.spawn(f"{self.name} watch", self._watchdog)

    async def stop(self) -> None:
        self._stopped = True
        if self._on_reconnected in self.bus.reconnected:
            self.bus.reconnected.remove(self._on_reconnected)
        for task in (self._watch, self._renewing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._drop(self._sub, self._consumer)
        self._sub = self._consumer = None

    def renew(self, why: str) -> None:
        """Make the consumer again from the next sequence, in the background, until the server takes it."""
        if self._stopped or (self._renewing is not None and not self._renewing.done()):
            return
        log.info("%s: making its consumer again from sequence %d (%s)", self.name, self.next_seq, why)
        self._consumer = None  # what the old one still delivers is dropped from here on
        self._renewing = asyncio.create_task(self.loops.retry(self.name, self._renew), name=f"{self.name} renew")
        self._renewing.add_done_callback(self._renewed)

    def _renewed(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.loops.fail(self.name, error)

    def _on_reconnected(self) -> None:
        self.renew("reconnected to NATS")

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self._consumer is not None and not self.connected:
                self.renew(f"nothing heard for {time.monotonic() - self._heard:.1f}s")

    async def _renew(self) -> None:
        old_sub, old_consumer = self._sub, self._consumer
        self._consumer = None
        await self._drop(old_sub, old_consumer)
        nc = self.bus.nc
        name = f"follow_{self._nuid.next().decode()}"
        self._inbox = nc.new_inbox()
        self._sub = await nc.subscribe(self._inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        self._dseq = 0
        self._consumer = name  # before it exists: its first messages may come before the server's reply
        try:
            await self.bus.jsm.add_consumer(
                STREAM, follow_config(name, self._inbox, self.subject, self.next_seq, self.heartbeat_s)
            )
        except BaseException:
            self._consumer = None
            raise
        self._heard = time.monotonic()

    async def _drop(self, sub: Subscription | None, consumer: str | None) -> None:
        """Let go of a consumer: the server removes one nobody listens to, but sooner is tidier."""
        if sub is not None and not self.bus.nc.is_closed:
            try:
                await sub.unsubscribe()
            except Exception:  # gone with its connection
                pass
        if consumer is not None and self.bus.nc.is_connected:
            task = asyncio.ensure_future(self._delete(consumer))
            self._deleting.add(task)
            task.add_done_callback(self._deleting.discard)

    async def _delete(self, consumer: str) -> None:
        try:
            await self.bus.jsm.delete_consumer(STREAM, consumer)
        except Exception:  # a restarted server has forgotten it already
            pass

    async def _on_msg(self, msg: Msg) -> None:
        reply = msg.reply
        if not reply or not reply.startswith("$JS.ACK."):
            await self._on_status(msg)
            return
        tokens = reply.split(".")  # $JS.ACK[.<domain>.<account>].<stream>.<consumer>.<n>.<seq>.<dseq>.<time>…
        o = 0 if len(tokens) == 9 else 2
        if tokens[3 + o] != self._consumer:
            return  # from a consumer given up on
        self._heard = time.monotonic()
        dseq = int(tokens[6 + o])
        if dseq != self._dseq + 1:
            self.renew(f"delivery {dseq} came after {self._dseq}")
            return
        self._dseq = dseq
        seq = int(tokens[5 + o])
        self.next_seq = seq + 1
        self.handler(Stored(seq, msg.subject, msg.data, int(tokens[7 + o])))

    async def _on_status(self, msg: Msg) -> None:
        if msg.subject != self._inbox or self._consumer is None:
            return
        headers = msg.headers or {}
        if headers.get(STATUS) != "100":
            self.renew(f"the server said {headers.get(STATUS)} {headers.get(DESCRIPTION, '')}".strip())
            return
        self._heard = time.monotonic()
        if msg.reply:  # a flow-control request: everything before it was handed over already
            await self.bus.nc.publish(msg.reply, b"")
            return
        last = headers.get(LAST_CONSUMER)
        if last is not None and int(last) != self._dseq:
            self.renew(f"the server delivered up to {last}, {self._dseq} arrived")
            return
        stalled = headers.get(STALLED)
        if stalled:
            await self.bus.nc.publish(stalled, b"")
