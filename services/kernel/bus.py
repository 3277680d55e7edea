"""The connection to NATS and what the services do through it: store events, read the log back.

The machinery lives beside it, one concern a module: the values (messages.py), the publishing
pipeline (publish.py), reading (read.py), following (follow.py) and provisioning (provision.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence

import nats.errors
from nats.aio.client import Client
from nats.js import api
from nats.js.errors import APIError

from .config import NatsConfig
from .events import Codec, Event
from .messages import Accepted, Expect, Outgoing, Stored
from .natsauth import connect_options
from .natsclient import NatsClient
from .provision import read_config
from .publish import ACK_TIMEOUT_S, WRONG_LAST_SEQUENCE, PublishAcks, settled, transient
from .read import READ_TIMEOUT_S, Pull, at_request, direct_got, newest_request, stream_end, up_to
from .redact import redact
from .subjects import DIRECT_GET, STREAM, STREAM_INFO, subject_for
from .supervise import describe

log = logging.getLogger("darkroom.bus")

CONNECT_TIMEOUT_S = 5.0  # at start-up (a command gives up within 10 s); once connected, reconnects never stop
RECONNECT_WAIT_S = 0.25
CLOSE_TIMEOUT_S = 2.0
READ_ATTEMPTS = 3


class Unreachable(Exception):
    """NATS did not answer a command starting up (or a one-shot command lost it)."""


@dataclass
class Counters:
    published: int = 0
    duplicates: int = 0


@dataclass
class Bus:
    nc: Client
    codec: Codec
    counters: Counters = field(default_factory=Counters)
    # Called after each reconnect: what the server may have forgotten (a restarted one forgets
    # in-memory consumers and pull requests) is asked for again at once.
    reconnected: list[Callable[[], None]] = field(default_factory=list)
    signs_nonce: bool = False  # signs in with an nkey (nats.creds, nats.nkey): only nats-py can connect so

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        codec: Codec | None = None,
        timeout: float = CONNECT_TIMEOUT_S,
        security: NatsConfig | None = None,
    ) -> Bus:
        """Connected, or Unreachable after `timeout` seconds; from then on, reconnects for ever."""
        bus: Bus | None = None
        errors = _ErrorLog()

        async def on_disconnected() -> None:
            if bus is not None:
                bus.acks.disconnected()

        async def on_reconnected() -> None:
            if bus is not None:
                bus.acks.reconnected()
            log.info("nats: reconnected to %s", redact(str(nc.connected_url.geturl()) if nc.connected_url else url))
            for listener in list(bus.reconnected if bus else ()):
                listener()

        servers, options = connect_options(url, security)
        nc = NatsClient()
        # Seconds, fractions included (nats-py annotates them as int).
        waits: dict[str, Any] = {
            "reconnect_time_wait": RECONNECT_WAIT_S,
            "connect_timeout": min(2.0, timeout),
            "drain_timeout": CLOSE_TIMEOUT_S,
        }
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers,
                    **options,
                    name=name,
                    max_reconnect_attempts=-1,
                    error_cb=errors.record,
                    disconnected_cb=on_disconnected,
                    reconnected_cb=on_reconnected,
                    **waits,
                ),
                timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await nc.close()
            why = errors.last or exc
            raise Unreachable(f"cannot reach NATS at {redact(url)} within {timeout:g}s: {describe(why)}") from None
        errors.connected = True
        bus = cls(nc=nc, codec=codec or Codec())
        bus.signs_nonce = "user_credentials" in options or "nkeys_seed" in options
        await bus.acks.start()
        return bus

    def __post_init__(self) -> None:
        # One context each: a JetStream context owns the reply inbox of its async publishes.
        self.js = self.nc.jetstream(timeout=10)
        self.jsm = self.nc.jsm()
        self.acks = PublishAcks(self.nc)

    async def close(self, drain: bool = True) -> None:
        """Drained when NATS is there (and `drain`), closed at once when it is not: never a wait on
        a server that is away."""
        self.acks.close()
        if self.nc.is_closed:
            return
        if drain and self.nc.is_connected:
            try:
                await asyncio.wait_for(self.nc.drain(), CLOSE_TIMEOUT_S + 1)
            except Exception:  # a connection lost during shutdown has nothing left to drain
                pass
        if not self.nc.is_closed:
            try:
                await self.nc.close()
            except Exception:  # nats-py flushes what it kept for the server into a socket that is gone
                log.debug("closing the NATS connection while it was down", exc_info=True)

    # -- storing events ---------------------------------------------------------------------------

    def outgoing(
        self, event: Event, msg_id: str | None = None, expect: Expect | None = None, subject: str | None = None
    ) -> Outgoing:
        return Outgoing(subject or subject_for(event), self.codec.encode(event), msg_id, expect)

    async def publish(
        self, event: Event, msg_id: str | None = None, expect: Expect | None = None, subject: str | None = None
    ) -> int:
        return await self.send(self.outgoing(event, msg_id, expect, subject))

    async def post(self, event: Event, msg_id: str | None = None) -> asyncio.Future[tuple[int, bool]]:
        """Write an event without waiting for its acknowledgement; `confirm` waits for it."""
        return await self.acks.publish(self.outgoing(event, msg_id))

    async def confirm(self, future: asyncio.Future[tuple[int, bool]]) -> int:
        seq, duplicate = await future
        self._count(duplicate)
        return seq

    def _count(self, duplicate: bool) -> None:
        if duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.published += 1

    async def publish_all(self, events: Sequence[Event]) -> int:
        """Store events in order; returns the last one's sequence (0 for none)."""
        if not events:
            return 0
        return (await self.send_many([self.outgoing(e) for e in events]))[-1]

    async def send(self, out: Outgoing) -> int:
        """Store one message and return its stream sequence (the original one for a duplicate)."""
        return (await self.send_many([out]))[0]

    async def send_many(self, batch: Iterable[Outgoing]) -> list[int]:
        """Publish without waiting between messages, then wait for every acknowledgement."""
        seqs = []
        for result in await self.send_many_settled(batch):
            if isinstance(result, Exception):
                raise result
            seqs.append(result.seq)
        return seqs

    async def send_many_settled(self, batch: Iterable[Outgoing]) -> list[Accepted | Exception]:
        """Like send_many, but each message's outcome is its own: accepted, or the error.
        Messages are written in order on one connection, so the stream stores them in order."""
        batch = list(batch)
        futures = [await self.acks.publish(out) for out in batch]
        outcomes = await self._after_transient_refusals(batch, await asyncio.gather(*futures, return_exceptions=True))
        results = [settled(outcome) for outcome in outcomes]
        for result in results:
            if isinstance(result, Accepted):
                self._count(result.duplicate)
        return results

    async def _after_transient_refusals(
        self, batch: list[Outgoing], outcomes: list[tuple[int, bool] | BaseException]
    ) -> list[tuple[int, bool] | BaseException]:
        """Asked again until they land, within the acknowledgement timeout: a message nothing stored
        because the stream has no leader for a moment (a node died), and one whose id another
        publisher's copy of is still being stored on a replicated stream."""
        deadline = asyncio.get_running_loop().time() + ACK_TIMEOUT_S
        delay = 0.05
        while True:
            again = [i for i, o in enumerate(outcomes) if transient(o)]
            if not again or asyncio.get_running_loop().time() > deadline:
                return outcomes
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)
            futures = [await self.acks.publish(batch[i]) for i in again]
            for i, outcome in zip(again, await asyncio.gather(*futures, return_exceptions=True)):
                outcomes[i] = outcome

    # -- reading the log ----------------------------------------------------------------------------

    async def last_seq(self) -> int:
        """The log's end now: asked on every upload and job start, so only that is decoded."""
        return stream_end((await self.nc.request(STREAM_INFO, b"", timeout=READ_TIMEOUT_S)).data)

    async def last_on(self, subject: str) -> Stored | None:
        """The newest message on a subject (wildcards allowed), straight from the stream (direct get):
        one request on the acks' inbox."""
        return direct_got(await (await self.acks.request(DIRECT_GET, newest_request(subject))), subject)

    async def stored(self, seq: int) -> Stored | None:
        """The message stored at `seq` (None: there is none, or no longer), straight from the stream."""
        return direct_got(await (await self.acks.request(DIRECT_GET, at_request(seq))), "")

    @asynccontextmanager
    async def reading(self, start_seq: int = 1, filters: list[str] | None = None) -> AsyncIterator[api.ConsumerInfo]:
        """An ephemeral consumer of the log from `start_seq`, removed afterwards; its `num_pending`
        is exactly what was stored when it was made: a reader never waits on what comes later."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                info = await self.jsm.add_consumer(STREAM, read_config(start_seq, filters))
                break
            except nats.errors.TimeoutError:
                # Just after a node died the cluster may place the reader on it, until it sees it gone.
                if attempt == READ_ATTEMPTS:
                    raise
                log.warning("making a reader of the log timed out; trying again (%d of %d)", attempt, READ_ATTEMPTS)
        try:
            yield info
        finally:
            try:
                await self.jsm.delete_consumer(STREAM, info.name)
            except Exception:  # the server drops an inactive ephemeral consumer on its own
                pass

    async def read(
        self, filters: list[str] | None = None, start_seq: int = 1, end_seq: int | None = None, batch: int = 512
    ) -> AsyncGenerator[list[Stored], None]:
        """The log from `start_seq` up to what is stored now (or `end_seq`), in order, in batches."""
        async with self.reading(start_seq, filters) as info:
            if not info.num_pending:
                return
            pull = Pull(self.nc, info.name, info.num_pending, batch)
            await pull.start()
            try:
                async for out in up_to(pull.next_batch, end_seq):
                    yield out
            finally:
                await pull.close()


class _ErrorLog:
    """nats-py's error callback. While connecting, errors are kept for the one line that says why
    the command gives up; once connected, each is logged, and one that repeats (a server away for a
    while fails every reconnect) at most every REPEAT_S."""

    REPEAT_S = 30.0

    def __init__(self) -> None:
        self.connected = False
        self.last: Exception | None = None
        self._said: dict[str, float] = {}

    async def record(self, exc: Exception) -> None:
        self.last = exc
        if isinstance(exc, APIError) and exc.err_code in WRONG_LAST_SEQUENCE:
            return  # a lost race on an aggregate: the publisher handles it as a Conflict
        if not self.connected:
            return
        text, now = describe(exc), time.monotonic()
        if now - self._said.get(text, -self.REPEAT_S) >= self.REPEAT_S:
            self._said[text] = now
            log.warning("nats: %s", text)
