"""Reading the log back: a consumer's messages pulled in batches, the stream's end, a subject's newest message."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable, NamedTuple

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError

from .clock import iso
from .messages import Stored
from .subjects import next_messages

READ_TIMEOUT_S = 5.0


def stored_of(msg: Msg) -> Stored:
    """A message a JetStream consumer delivered: its reply subject carries the sequence and time."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":  # $JS.ACK.<stream>.<consumer>.…
        return Stored(int(tokens[5]), msg.subject, msg.data, int(tokens[7]))
    meta = msg.metadata  # the newer form, with domain and account; raises for anything else
    return Stored(meta.sequence.stream, msg.subject, msg.data, iso(meta.timestamp))


class Delivery(NamedTuple):
    seq: int  # the message's stream sequence
    delivered: int  # how many times the consumer has delivered it (1: the first time)


def delivery_of(msg: Msg) -> Delivery:
    """A consumer's message: its sequence and delivery count from its reply subject (msg.metadata reads
    all of it, a time included, for several times the cost: it is asked of every message consumed)."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":  # $JS.ACK.<stream>.<consumer>.<count>.<seq>…
        return Delivery(int(tokens[5]), int(tokens[4]))
    meta = msg.metadata  # the newer form, with domain and account; raises for anything else
    return Delivery(meta.sequence.stream, meta.num_delivered)


class _StreamState(msgspec.Struct):
    last_seq: int = 0


class _StreamEnd(msgspec.Struct):
    state: _StreamState = msgspec.field(default_factory=_StreamState)
    error: dict[str, Any] | None = None


_STREAM_END = msgspec.json.Decoder(_StreamEnd)


def stream_end(reply: bytes) -> int:
    """The last sequence from a stream info reply; only that is decoded (nats-py's StreamInfo does it all)."""
    end = _STREAM_END.decode(reply)
    if end.error is not None:
        raise APIError.from_error(end.error)
    return end.state.last_seq


class _LastBySubject(msgspec.Struct):
    last_by_subj: str


class _BySeq(msgspec.Struct):
    seq: int


_JSON = msgspec.json.Encoder()


def newest_request(subject: str) -> bytes:
    """A direct get's request for the newest message on `subject`."""
    return _JSON.encode(_LastBySubject(subject))


def at_request(seq: int) -> bytes:
    """A direct get's request for the message stored at `seq`."""
    return _JSON.encode(_BySeq(seq))


def direct_got(reply: Msg, subject: str) -> Stored | None:
    """The message a direct get answered, its headers read as they come; None when there is none."""
    headers = reply.headers or {}
    if "Nats-Sequence" not in headers:
        if headers.get("Status") == "404":
            return None
        APIError.from_msg(reply)
    return Stored(int(headers["Nats-Sequence"]), headers.get("Nats-Subject", subject), reply.data)


async def up_to(next_batch: Callable[[], Awaitable[list[Stored]]], end_seq: int | None) -> AsyncIterator[list[Stored]]:
    """Batches from `next_batch` until it returns none, or through `end_seq` (None: to the end)."""
    while out := await next_batch():
        if end_seq is not None and out[-1].seq >= end_seq:
            out = [s for s in out if s.seq <= end_seq]
            if out:
                yield out
            return
        yield out


class Pull:
    """Pulls `total` messages from a consumer, keeping the next batches asked for while the caller
    works on this one: the server streams on instead of waiting for each fetch, and each message
    costs one callback (nats-py's fetch costs a timer and a task per message)."""

    def __init__(self, nc: Client, consumer: str, total: int, batch: int, window: int = 3) -> None:
        self.nc = nc
        self.next_subject = next_messages(consumer)
        self.total = total
        self.batch = batch
        self.window = window
        self.requested = 0  # messages asked for
        self.taken = 0  # messages handed to the caller
        self.buffer: list[Stored] = []
        self.wake = asyncio.Event()
        self.inbox = nc.new_inbox()
        self.sub: Subscription | None = None
        self.status: str | None = None

    async def start(self) -> None:
        self.sub = await self.nc.subscribe(self.inbox, cb=self._on_msg)
        await self._ask()

    async def close(self) -> None:
        if self.sub is not None and not self.nc.is_closed:
            await self.sub.unsubscribe()
        self.sub = None

    async def _ask(self) -> None:
        while self.requested < self.total and self.requested - self.taken < self.window * self.batch:
            n = min(self.batch, self.total - self.requested)
            self.requested += n
            request = b'{"batch":%d,"expires":%d}' % (n, int(READ_TIMEOUT_S * 6 * 1e9))
            await self.nc.publish(self.next_subject, request, reply=self.inbox)

    async def _on_msg(self, msg: Msg) -> None:
        if not msg.reply:  # a status (request expired, no messages…): nothing from the log
            self.status = (msg.headers or {}).get("Status")
            self.wake.set()
            return
        self.buffer.append(stored_of(msg))
        if len(self.buffer) >= self.batch or self.taken + len(self.buffer) >= self.total:
            self.wake.set()

    async def next_batch(self) -> list[Stored]:
        """The messages that arrived, at least a batch's worth unless the end is near; [] at the end."""
        if self.taken >= self.total:
            return []
        while len(self.buffer) < min(self.batch, self.total - self.taken):
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), READ_TIMEOUT_S)
            except TimeoutError:
                if self.buffer:
                    break
                raise TimeoutError(
                    f"reading the log: nothing arrived within {READ_TIMEOUT_S:g}s (status {self.status})"
                ) from None
        out, self.buffer = self.buffer, []
        self.taken += len(out)
        await self._ask()
        return out
