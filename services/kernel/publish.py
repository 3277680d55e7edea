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
from nats.aio.client import Client
from nats.aio.msg import Msg

from .messages import Accepted, Conflict, Outgoing
from .supervise import TransientError

WRONG_LAST_SEQUENCE = (10071, 10164)
ACK_TIMEOUT_S = 10.0


class PublishError(TransientError):
    """JetStream refused a message: `err_code` says why (10071: wrong last sequence)."""

    def __init__(self, err_code: int | None, description: str) -> None:
        super().__init__(f"{description} (err_code {err_code})")
        self.err_code = err_code
        self.description = description


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
        self.futures: dict[str, tuple[asyncio.Future[Any], float, bool]] = {}  # token -> future, deadline, raw
        self.counter = 0
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
        self.futures[token] = (future, loop.time() + ACK_TIMEOUT_S, raw)
        await self.nc.publish(subject, data, reply=f"{self.prefix}.{token}", headers=headers)
        return future

    async def _sweep(self) -> None:
        # One timer for all outstanding acks, rather than one per message.
        while True:
            await asyncio.sleep(1.0)
            now = asyncio.get_running_loop().time()
            for token, (future, deadline, _raw) in list(self.futures.items()):
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
            future.set_exception(PublishError(None, f"no stream answered (status {status})"))
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
