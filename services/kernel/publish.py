"""The publishing pipeline: many messages out on one connection, each acknowledgement matched to its
future, and other requests answered on the same inbox (direct gets), cheaper than nats-py's request
per message.

nats-py's publish_async loses the future of a refused message (its error parser raises inside the
reply callback), which would hang every optimistic-concurrency conflict.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from .messages import Accepted, Conflict, Outgoing
from .supervise import TransientError

WRONG_LAST_SEQUENCE = (10071, 10164)
DUPLICATE_IN_PROCESS = 10158
ACK_TIMEOUT_S = 10.0
# After a reconnect, how long what the lost connection carried may still be answered (a server
# restarted meanwhile never will): its senders hear then, not at the ack timeout.
RECONNECT_GRACE_S = 0.5


class PublishError(TransientError):
    """JetStream refused a message: `err_code` says why (10071: wrong last sequence); `status` 503:
    no stream answered."""

    def __init__(self, err_code: int | None, description: str, status: str | None = None) -> None:
        super().__init__(f"{description} (err_code {err_code})")
        self.err_code = err_code
        self.description = description
        self.status = status


def transient(outcome: object) -> bool:
    """A refusal that asking again mends: the stream had no leader for a moment (503), or another
    publisher's copy of the message is still being stored ("in process": it comes back a duplicate)."""
    return isinstance(outcome, PublishError) and (outcome.err_code == DUPLICATE_IN_PROCESS or outcome.status == "503")


class _Ack(msgspec.Struct):
    seq: int = 0
    duplicate: bool = False
    error: dict[str, Any] | None = None


_ACK = msgspec.json.Decoder(_Ack)


class PublishAcks:
    """Outstanding publishes and requests, by the token ending their reply subject."""

    def __init__(self, nc: Client, max_pending: int = 4000) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        # token -> future, deadline, raw, the connection it went out on (see `disconnected`)
        self.futures: dict[str, tuple[asyncio.Future[Any], float, bool, int]] = {}
        self.counter = 0
        self.connection = 0
        self._requests: list[asyncio.Future[Any]] = []
        self.slots = asyncio.Semaphore(max_pending)
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.nc.subscribe(f"{self.prefix}.*", cb=self._on_reply)
        self._sweeper = asyncio.create_task(self._sweep())

    async def publish(self, out: Outgoing) -> asyncio.Future[tuple[int, bool]]:
        """Its future holds (sequence, duplicate), or the PublishError."""
        return await self._send(out.subject, out.data, out.headers(), raw=False)

    async def request(self, subject: str, data: bytes) -> asyncio.Future[Msg]:
        """Its future holds the reply message as it came."""
        return await self._send(subject, data, None, raw=True)

    async def _send(self, subject: str, data: bytes, headers: dict[str, str] | None, raw: bool) -> asyncio.Future[Any]:
        await self.slots.acquire()
        self.counter += 1
        token = str(self.counter)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
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

    def _lost(self, connection: int, requests: list[asyncio.Future[Any]]) -> None:
        """Fail what went out on a connection before `connection`: its answer is not coming."""
        for token, (future, _deadline, _raw, sent_on) in list(self.futures.items()):
            if sent_on < connection:
                del self.futures[token]
                if not future.done():
                    future.set_exception(PublishError(None, "no answer from JetStream: the connection was lost"))
        for future in requests:
            if not future.done():
                future.set_exception(nats.errors.TimeoutError())

    async def _sweep(self) -> None:
        # One timer for all outstanding acks, rather than one per message.
        while True:
            await asyncio.sleep(1.0)
            now = asyncio.get_running_loop().time()
            for token, (future, deadline, _raw, _sent_on) in list(self.futures.items()):
                if deadline < now:
                    del self.futures[token]
                    if not future.done():
                        future.set_exception(PublishError(None, f"no answer from JetStream within {ACK_TIMEOUT_S:g}s"))

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


def settled(outcome: tuple[int, bool] | BaseException) -> Accepted | Exception:
    """What became of one published message: accepted, a Conflict (its expectation failed), or the error."""
    if isinstance(outcome, PublishError) and outcome.err_code in WRONG_LAST_SEQUENCE:
        return Conflict(outcome.description)
    if isinstance(outcome, BaseException):
        return outcome if isinstance(outcome, Exception) else Exception(str(outcome))
    return Accepted(*outcome)
