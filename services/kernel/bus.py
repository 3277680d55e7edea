"""JetStream plumbing: connect, provision, publish with dedupe and CAS, read the log."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import AsyncIterator, Awaitable, Callable, Iterable, NamedTuple

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import APIError, NotFoundError

from .config import Config, NatsConfig
from .events import Codec, Event
from .lease import BUCKET, lease_bucket
from .natsauth import connect_options
from .redact import redact
from .retention import StreamSize, parse_age, parse_size, warnings
from .subjects import ALL, DIRECT_GET, DISPATCH, LANES, STREAM, STREAM_INFO, lane_filter, next_messages, subject_for
from .supervise import TransientError, describe

log = logging.getLogger("darkroom.bus")

WRONG_LAST_SEQUENCE = (10071, 10164)
DUPLICATE_IN_PROCESS = 10158
NOT_ENOUGH_PEERS = (10005, 10074, 10023)  # clustering required, replicas > 1 unsupported, insufficient resources
ACK_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0  # at start-up (a command gives up within 10 s); once connected, reconnects never stop
RECONNECT_WAIT_S = 0.25
CLOSE_TIMEOUT_S = 2.0
READ_ATTEMPTS = 3
# After a reconnect, how long what the lost connection carried may still be answered (a server
# restarted meanwhile never will): its senders hear then, not at the ack timeout.
RECONNECT_GRACE_S = 0.5


class Conflict(Exception):
    """An expected-last-sequence check failed: someone else wrote to that aggregate first."""


class ProvisionError(Exception):
    """The stream or a consumer exists with a configuration Darkroom cannot use."""


class Unreachable(Exception):
    """NATS did not answer a command starting up (or a one-shot command lost it)."""


@dataclass(frozen=True)
class Expect:
    """Optimistic concurrency: the last stream sequence stored on `subject` (wildcards allowed)."""

    subject: str
    last_seq: int


@dataclass
class Outgoing:
    subject: str
    data: bytes
    msg_id: str | None = None
    expect: Expect | None = None

    def headers(self) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        if self.msg_id:
            headers["Nats-Msg-Id"] = self.msg_id
        if self.expect is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(self.expect.last_seq)
            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = self.expect.subject
        return headers or None


class Accepted(NamedTuple):
    """JetStream stored a message: its sequence, or the earlier one's when the message id was a duplicate."""

    seq: int
    duplicate: bool


class Stored(msgspec.Struct, array_like=True, gc=False):
    """A message read back from the log; `at` is when the stream stored it (RFC 3339, ms). A Struct
    read from an array, so a rebuild decodes the reader's frames straight into it (no cycles: gc=False)."""

    seq: int
    subject: str
    data: bytes
    _at: str | int = ""  # or the stream's nanosecond timestamp, formatted when asked for

    @property
    def at(self) -> str:
        if isinstance(self._at, int):
            stamp = datetime.fromtimestamp(self._at / 1_000_000_000.0, timezone.utc)
            self._at = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return self._at

    @classmethod
    def from_msg(cls, msg: Msg) -> "Stored":
        """From a message a JetStream consumer delivered: its reply subject carries the sequence and time."""
        tokens = (msg.reply or "").split(".")
        if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":  # $JS.ACK.<stream>.<consumer>.…
            return cls(int(tokens[5]), msg.subject, msg.data, int(tokens[7]))
        meta = msg.metadata  # the newer form, with domain and account; raises for anything else
        return cls(meta.sequence.stream, msg.subject, msg.data,
                   meta.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stored):
            return NotImplemented
        return (self.seq, self.subject, self.data, self.at) == (other.seq, other.subject, other.data, other.at)

    def __repr__(self) -> str:
        return f"Stored(seq={self.seq}, subject={self.subject!r}, data={self.data!r}, at={self.at!r})"


async def up_to(next_batch: Callable[[], Awaitable[list[Stored]]],
                end_seq: int | None) -> AsyncIterator[list[Stored]]:
    """Batches from `next_batch` until it returns none, or through `end_seq` (None: to the end)."""
    while out := await next_batch():
        if end_seq is not None and out[-1].seq >= end_seq:
            out = [s for s in out if s.seq <= end_seq]
            if out:
                yield out
            return
        yield out


class PublishError(TransientError):
    """JetStream refused a message: `err_code` says why (10071: wrong last sequence); `status` 503:
    no stream answered."""

    def __init__(self, err_code: int | None, description: str, status: str | None = None) -> None:
        super().__init__(f"{description} (err_code {err_code})")
        self.err_code = err_code
        self.description = description
        self.status = status


def _transient(outcome: object) -> bool:
    return isinstance(outcome, PublishError) and (outcome.err_code == DUPLICATE_IN_PROCESS or outcome.status == "503")


class _Ack(msgspec.Struct):
    seq: int = 0
    duplicate: bool = False
    error: dict | None = None


_ACK = msgspec.json.Decoder(_Ack)


class _StreamState(msgspec.Struct):
    last_seq: int = 0


class _StreamEnd(msgspec.Struct):
    state: _StreamState = msgspec.field(default_factory=_StreamState)
    error: dict | None = None


_STREAM_END = msgspec.json.Decoder(_StreamEnd)


class _LastBySubject(msgspec.Struct):
    last_by_subj: str


class _BySeq(msgspec.Struct):
    seq: int


_DIRECT_GET = msgspec.json.Encoder()


class PublishAcks:
    """Pipelined JetStream publishing: many messages out, each ack matched to its future; and other
    requests answered on the same inbox (direct gets), cheaper than nats-py's request per message.

    nats-py's publish_async loses the future of a refused message (its error parser raises
    inside the reply callback), which would hang every optimistic-concurrency conflict.
    """

    def __init__(self, nc: Client, max_pending: int = 4000) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        # token -> future, deadline, raw, the connection it went out on (see `disconnected`)
        self.futures: dict[str, tuple[asyncio.Future, float, bool, int]] = {}
        self.counter = 0
        self.connection = 0
        self._requests: list[asyncio.Future] = []
        self.slots = asyncio.Semaphore(max_pending)
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        await self.nc.subscribe(f"{self.prefix}.*", cb=self._on_reply)
        self._sweeper = asyncio.create_task(self._sweep())

    async def publish(self, out: "Outgoing") -> asyncio.Future:
        """Its future holds (sequence, duplicate), or the PublishError."""
        return await self._send(out.subject, out.data, out.headers(), raw=False)

    async def request(self, subject: str, data: bytes) -> asyncio.Future:
        """Its future holds the reply message as it came."""
        return await self._send(subject, data, None, raw=True)

    async def _send(self, subject: str, data: bytes, headers: dict[str, str] | None, raw: bool) -> asyncio.Future:
        await self.slots.acquire()
        self.counter += 1
        token = str(self.counter)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        future.add_done_callback(lambda _f: self.slots.release())
        # Sent while disconnected, it waits in the client's buffer for the next connection.
        connection = self.connection + (0 if self.nc.is_connected else 1)
        self.futures[token] = (future, loop.time() + ACK_TIMEOUT_S, raw, connection)
        await self.nc.publish(subject, data, reply=f"{self.prefix}.{token}", headers=headers)
        return future

    def disconnected(self) -> None:
        self.connection += 1
        # nats-py's own requests (the JetStream API, the log's end) wait for their answer in this
        # map until it comes or they time out: those asked before now are in the same case.
        self._requests = [f for f in getattr(self.nc, "_resp_map", {}).values() if not f.done()]

    def reconnected(self) -> None:
        requests, self._requests = self._requests, []
        asyncio.get_running_loop().call_later(RECONNECT_GRACE_S, self._lost, self.connection, requests)

    def _lost(self, connection: int, requests: list[asyncio.Future]) -> None:
        """Fail what went out on a connection before `connection`: its answer is not coming."""
        for token, (future, _deadline, _raw, sent_on) in list(self.futures.items()):
            if sent_on < connection:
                del self.futures[token]
                if not future.done():
                    future.set_exception(PublishError(None, "no answer from JetStream: the connection was lost"))
        for future in requests:
            if not future.done():
                future.set_exception(nats.errors.TimeoutError())

    @staticmethod
    async def wait(future: asyncio.Future) -> tuple[int, bool]:
        return await future

    async def _sweep(self) -> None:
        # One timer for all outstanding acks, rather than one per message.
        while True:
            await asyncio.sleep(1.0)
            now = asyncio.get_running_loop().time()
            for token, (future, deadline, _raw, _sent_on) in list(self.futures.items()):
                if deadline < now:
                    del self.futures[token]
                    if not future.done():
                        future.set_exception(PublishError(
                            None, f"no answer from JetStream within {ACK_TIMEOUT_S:g}s"))

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _on_reply(self, msg: Msg) -> None:
        entry = self.futures.pop(msg.subject.rsplit(".", 1)[1], None)
        if entry is None or entry[0].done():
            return
        future = entry[0]
        if entry[2]:
            future.set_result(msg)
            return
        if not msg.data:
            status = (msg.headers or {}).get("Status", "?")
            future.set_exception(PublishError(None, f"no stream answered (status {status})", status))
            return
        ack = _ACK.decode(msg.data)
        if ack.error:
            future.set_exception(PublishError(ack.error.get("err_code"), ack.error.get("description", "refused")))
        else:
            future.set_result((ack.seq, ack.duplicate))


@dataclass
class Counters:
    published: int = 0
    duplicates: int = 0


def lane_consumer(lane: str) -> str:
    return f"lane_{lane}"


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
    async def connect(cls, url: str, name: str, codec: Codec | None = None,
                      timeout: float = CONNECT_TIMEOUT_S, security: NatsConfig | None = None) -> "Bus":
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
        nc = Client()
        try:
            await asyncio.wait_for(nc.connect(
                servers,
                **options,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_S,
                connect_timeout=min(2.0, timeout),
                drain_timeout=CLOSE_TIMEOUT_S,
                error_cb=errors.record,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            ), timeout)
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as exc:
            await nc.close()
            why = errors.last or exc
            raise Unreachable(f"cannot reach NATS at {redact(url)} within {timeout:g}s: "
                              f"{describe(why)}") from None
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

    # -- publishing ---------------------------------------------------------------------------

    def outgoing(self, event: Event, msg_id: str | None = None, expect: Expect | None = None,
                 subject: str | None = None) -> Outgoing:
        return Outgoing(subject or subject_for(event), self.codec.encode(event), msg_id, expect)

    async def publish(self, event: Event, msg_id: str | None = None, expect: Expect | None = None,
                      subject: str | None = None) -> int:
        return await self.send(self.outgoing(event, msg_id, expect, subject))

    async def post(self, event: Event, msg_id: str | None = None) -> asyncio.Future:
        """Write an event without waiting for its acknowledgement; `confirm` waits for it."""
        return await self.acks.publish(self.outgoing(event, msg_id))

    async def confirm(self, future: asyncio.Future) -> int:
        seq, duplicate = await self.acks.wait(future)
        self._count(duplicate)
        return seq

    def _count(self, duplicate: bool) -> None:
        if duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.published += 1

    async def publish_all(self, events: list[Event]) -> int:
        """Store events in order; returns the last one's sequence (0 for none)."""
        if not events:
            return 0
        return (await self.send_many([self.outgoing(e) for e in events]))[-1]

    async def send(self, out: Outgoing) -> int:
        """Store one message and return its stream sequence (the original one for a duplicate)."""
        result = (await self.send_many_settled([out]))[0]
        if isinstance(result, Exception):
            raise result
        return result.seq

    async def send_many(self, batch: Iterable[Outgoing]) -> list[int]:
        """Publish without waiting between messages, then wait for every acknowledgement."""
        results = await self.send_many_settled(batch)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return [result.seq for result in results]  # type: ignore[union-attr]

    async def send_many_settled(self, batch: Iterable[Outgoing]) -> list[Accepted | Exception]:
        """Like send_many, but each message's outcome is its own: accepted, or the error.
        Messages are written in order on one connection, so the stream stores them in order."""
        batch = list(batch)
        futures = [await self.acks.publish(out) for out in batch]
        outcomes = await self._after_transient_refusals(batch, await asyncio.gather(*futures, return_exceptions=True))
        results: list[Accepted | Exception] = []
        for outcome in outcomes:
            if isinstance(outcome, PublishError) and outcome.err_code in WRONG_LAST_SEQUENCE:
                results.append(Conflict(outcome.description))
            elif isinstance(outcome, BaseException):
                results.append(outcome if isinstance(outcome, Exception) else Exception(str(outcome)))
            else:
                accepted = Accepted(*outcome)
                self._count(accepted.duplicate)
                results.append(accepted)
        return results

    async def _after_transient_refusals(self, batch: list[Outgoing], outcomes: list) -> list:
        """Asked again until they land, within the acknowledgement timeout: a message nothing stored
        because the stream has no leader for a moment (a node died; status 503), and one whose id
        another publisher's copy of is still being stored on a replicated stream ("in process": it
        comes back a plain duplicate)."""
        deadline = asyncio.get_running_loop().time() + ACK_TIMEOUT_S
        delay = 0.05
        while True:
            again = [i for i, o in enumerate(outcomes) if _transient(o)]
            if not again or asyncio.get_running_loop().time() > deadline:
                return outcomes
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)
            futures = [await self.acks.publish(batch[i]) for i in again]
            for i, outcome in zip(again, await asyncio.gather(*futures, return_exceptions=True)):
                outcomes[i] = outcome

    # -- reading --------------------------------------------------------------------------------

    async def last_seq(self) -> int:
        """The log's end now: asked on every upload and job start, so only `state.last_seq` is decoded
        (nats-py's StreamInfo conversion doubled the cost)."""
        reply = _STREAM_END.decode((await self.nc.request(STREAM_INFO, b"", timeout=READ_TIMEOUT_S)).data)
        if reply.error is not None:
            raise APIError.from_error(reply.error)
        return reply.state.last_seq

    async def last_on(self, subject: str) -> Stored | None:
        """The newest message on a subject (wildcards allowed), straight from the stream (direct get):
        one request on the acks' inbox, its headers read as they come (nats-py's form costs twice as much)."""
        return await self._direct_get(_LastBySubject(subject), subject)

    async def stored(self, seq: int) -> Stored | None:
        """The message stored at `seq` (None: there is none, or no longer), straight from the stream."""
        return await self._direct_get(_BySeq(seq), "")

    async def _direct_get(self, query: msgspec.Struct, subject: str) -> Stored | None:
        reply = await (await self.acks.request(DIRECT_GET, _DIRECT_GET.encode(query)))
        headers = reply.headers or {}
        if "Nats-Sequence" not in headers:
            if headers.get("Status") == "404":
                return None
            APIError.from_msg(reply)
        return Stored(int(headers["Nats-Sequence"]), headers.get("Nats-Subject", subject), reply.data)

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

    async def read(self, filters: list[str] | None = None, start_seq: int = 1,
                   end_seq: int | None = None, batch: int = 512) -> AsyncIterator[list[Stored]]:
        """The log from `start_seq` up to what is stored now (or `end_seq`), in order, in batches."""
        async with self.reading(start_seq, filters) as info:
            if info.num_pending == 0:
                return
            pull = _Pull(self.nc, info.name, info.num_pending, batch)
            await pull.start()
            try:
                async for out in up_to(pull.next_batch, end_seq):
                    yield out
            finally:
                await pull.close()


def read_config(start_seq: int, filters: list[str] | None = None) -> api.ConsumerConfig:
    """An ephemeral consumer that reads the log once, from `start_seq`."""
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        mem_storage=True,
        inactive_threshold=30.0,
        max_ack_pending=-1,
    )
    if filters and len(filters) == 1:
        config.filter_subject = filters[0]
    elif filters:
        config.filter_subjects = list(filters)
    return config


class _Pull:
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
        self.sub = None
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
        self.buffer.append(Stored.from_msg(msg))
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
            except asyncio.TimeoutError:
                if self.buffer:
                    break
                raise TimeoutError(f"reading the log: nothing arrived within {READ_TIMEOUT_S:g}s "
                                   f"(status {self.status})") from None
        out, self.buffer = self.buffer, []
        self.taken += len(out)
        await self._ask()
        return out


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



# -- provisioning ---------------------------------------------------------------------------------


def stream_config(config: Config) -> api.StreamConfig:
    return api.StreamConfig(
        name=STREAM,
        subjects=[ALL],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        num_replicas=config.nats.replicas,
        duplicate_window=config.nats.duplicate_window_s,
        allow_direct=True,
        discard=api.DiscardPolicy.OLD,
        max_bytes=parse_size(config.nats.max_bytes) or -1,
        max_age=parse_age(config.nats.max_age),
    )


def lane_config(lane: str, config: Config, start_seq: int | None) -> api.ConsumerConfig:
    name = lane_consumer(lane)
    return api.ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=lane_filter(lane),
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=config.pipeline.ack_wait_s,
        # A backstop only: the worker fails a job at max_attempts and terminates it first.
        max_deliver=config.pipeline.max_attempts + 2,
        max_ack_pending=10_000,
        num_replicas=config.nats.replicas,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start_seq else api.DeliverPolicy.ALL,
        opt_start_seq=start_seq,
    )


@dataclass
class Provisioned:
    recreated_lanes: dict[str, int] = field(default_factory=dict)


async def provision(bus: Bus, config: Config) -> Provisioned:
    """Create or check the stream, the two lane consumers and the lease bucket, bringing their
    replicas and the stream's limits to the configuration's; safe to run from every service."""
    wanted = stream_config(config)
    try:
        info = await bus.jsm.stream_info(STREAM)
    except NotFoundError:
        info = await _scaled(bus.jsm.add_stream(wanted), config, f"stream {STREAM}")
    else:
        have = info.config
        if have.subjects != wanted.subjects or have.storage != wanted.storage or have.retention != wanted.retention:
            raise ProvisionError(
                f"stream {STREAM} exists with subjects={have.subjects} storage={have.storage} "
                f"retention={have.retention}; Darkroom needs {wanted.subjects}, file storage, limits retention")
        if _stream_differs(have, wanted):
            if have.num_replicas != wanted.num_replicas:
                log.warning("stream %s: replicas %s -> %d (nats.replicas)", STREAM, have.num_replicas,
                            wanted.num_replicas)
            info = await _scaled(bus.jsm.update_stream(wanted), config, f"stream {STREAM}")
            if have.num_replicas != wanted.num_replicas:
                info = await _replicated(bus, STREAM, wanted.num_replicas)
    for line in warnings(parse_size(config.nats.max_bytes), parse_age(config.nats.max_age),
                         StreamSize(info.state.messages, info.state.bytes, info.state.first_seq,
                                    info.state.last_seq)):
        log.warning("%s", line)
    result = Provisioned()
    for lane in LANES:
        result_seq = await _ensure_lane(bus, config, lane, info.state.last_seq)
        if result_seq is not None:
            result.recreated_lanes[lane] = result_seq
    await _scaled(lease_bucket(bus, config.nats.replicas), config, f"the lease bucket {BUCKET}")
    return result


def _stream_differs(have: api.StreamConfig, wanted: api.StreamConfig) -> bool:
    return (not have.allow_direct or have.duplicate_window != wanted.duplicate_window
            or (have.num_replicas or 1) != wanted.num_replicas
            or (have.max_bytes or -1) != wanted.max_bytes or (have.max_age or 0) != wanted.max_age)


async def _replicated(bus: Bus, stream: str, replicas: int, timeout: float = 30.0) -> api.StreamInfo:
    """The stream's info once all its replicas are placed: consumers are scaled only after it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await bus.jsm.stream_info(stream)
        if 1 + len((info.cluster and info.cluster.replicas) or []) >= replicas:
            return info
        if asyncio.get_running_loop().time() > deadline:
            raise ProvisionError(f"stream {stream} did not reach {replicas} replicas within {timeout:g}s; "
                                 f"check the cluster (nats-server logs, /jsz)")
        await asyncio.sleep(0.1)


async def _scaled(change: Awaitable, config: Config, what: str):
    """`change` (a create or update), with a refusal to replicate said as the setting to fix."""
    try:
        return await change
    except APIError as exc:
        if config.nats.replicas == 1 or "replica" not in (exc.description or "").lower() \
                and exc.err_code not in NOT_ENOUGH_PEERS:
            raise
        raise ProvisionError(
            f"{what} cannot have {config.nats.replicas} replicas ({exc.description}): nats.replicas must not "
            f"exceed the JetStream servers of the cluster (a single server takes 1); set nats.replicas "
            f"to that, or add servers") from None


async def _ensure_lane(bus: Bus, config: Config, lane: str, last_seq: int) -> int | None:
    name = lane_consumer(lane)
    try:
        have = (await bus.jsm.consumer_info(STREAM, name)).config
    except NotFoundError:
        have = None
    if have is not None and have.filter_subject == f"{DISPATCH}{lane}.>":
        # Made before CONTRACT §7.1, for the copies: made again for the requests themselves, from the
        # log's end; the orchestrator stores again the requests still open before it.
        await bus.jsm.delete_consumer(STREAM, name)
        log.warning("lane consumer %s took copies on %s.>; made again for the requests", name, DISPATCH + lane)
        have = None
    if have is None:
        # Never from the beginning: that would run every old job again.
        start = last_seq + 1 if last_seq else None
        await bus.jsm.add_consumer(STREAM, lane_config(lane, config, start))
        if start:
            log.warning("lane consumer %s was missing; recreated to start at sequence %d", name, start)
        return start
    wanted = lane_config(lane, config, have.opt_start_seq)
    if have.filter_subject != wanted.filter_subject or have.ack_policy != wanted.ack_policy:
        raise ProvisionError(
            f"consumer {name} exists with filter {have.filter_subject!r} and ack policy {have.ack_policy}; "
            f"Darkroom needs {wanted.filter_subject!r} with explicit acks")
    if have.ack_wait != wanted.ack_wait or have.max_deliver != wanted.max_deliver \
            or (have.num_replicas or 1) != wanted.num_replicas:
        wanted.deliver_policy = have.deliver_policy
        # Same name: an update of the mutable fields.
        await _scaled(bus.jsm.add_consumer(STREAM, wanted), config, f"consumer {name}")
    return None
