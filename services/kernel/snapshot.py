"""A stream's consistent copy through JetStream's own API (nats-py has no helper): a snapshot is
streamed to an inbox chunk by chunk, each acknowledged; a restore sends the chunks back to the
subject the server names, each answered. The snapshot holds the messages; the durable consumers go
beside it as their configurations and places (a snapshot's own copy of them keeps their replicas,
which a smaller cluster cannot restore, and fails on a reader whose node just died)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

from nats.aio.client import Client
from nats.aio.msg import Msg

from . import subjects

CHUNK_SIZE = 128 * 1024
IDLE_S = 30.0  # no chunk for this long: the snapshot is abandoned
API_TIMEOUT_S = 30.0


class SnapshotError(Exception):
    """The server refused or broke off a snapshot or a restore; the message says why."""


@dataclass(frozen=True)
class Snapshot:
    config: dict[str, Any]  # the stream's configuration and state when the snapshot was taken, as JetStream says them
    state: dict[str, Any]
    size: int
    sha256: str


def _api_reply(msg: Msg, what: str) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(msg.data or b"{}")
    if reply.get("error"):
        error = reply["error"]
        raise SnapshotError(f"{what}: {error.get('description', error)} (err_code {error.get('err_code')})")
    return reply


async def snapshot(nc: Client, stream: str, out: BinaryIO) -> Snapshot:
    """Write the stream's snapshot to `out`; returns what it holds and the bytes' hash."""
    inbox = nc.new_inbox()
    digest, size = hashlib.sha256(), 0
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    last = loop.time()

    async def on_chunk(msg: Msg) -> None:
        nonlocal size, last
        last = loop.time()
        if msg.data:
            out.write(msg.data)
            digest.update(msg.data)
            size += len(msg.data)
            if msg.reply:  # the last, short chunk has none
                await nc.publish(msg.reply, b"")
            return
        status = (msg.headers or {}).get("Status", "")
        if not done.done():
            if status and status not in ("200", "204"):
                done.set_exception(
                    SnapshotError(
                        f"snapshot of {stream} broke off: {status} {(msg.headers or {}).get('Description', '')}".strip()
                    )
                )
            else:
                done.set_result(None)

    sub = await nc.subscribe(inbox, cb=on_chunk)
    try:
        request = {"deliver_subject": inbox, "chunk_size": CHUNK_SIZE, "jsck": True, "no_consumers": True}
        reply = _api_reply(
            await nc.request(subjects.stream_snapshot(stream), json.dumps(request).encode(), timeout=API_TIMEOUT_S),
            f"snapshot of {stream}",
        )
        while not done.done():
            await asyncio.wait([done], timeout=1.0)
            if not done.done() and loop.time() - last > IDLE_S:
                raise SnapshotError(f"snapshot of {stream}: nothing arrived for {IDLE_S:g}s")
        await done
    finally:
        await sub.unsubscribe()
    return Snapshot(config=reply["config"], state=reply["state"], size=size, sha256=digest.hexdigest())


async def restore(
    nc: Client, stream: str, config: dict[str, Any], state: dict[str, Any], chunks: Iterator[bytes]
) -> dict[str, Any]:
    """Make `stream` from a snapshot's chunks; it must not exist. Returns the stream's info."""
    request = json.dumps({"config": config, "state": state}).encode()
    reply = _api_reply(
        await nc.request(subjects.stream_restore(stream), request, timeout=API_TIMEOUT_S), f"restore of {stream}"
    )
    target = reply["deliver_subject"]
    for chunk in chunks:
        if chunk:
            answer = await nc.request(target, chunk, timeout=API_TIMEOUT_S)
            if answer.data:  # an empty answer is the go-ahead for the next chunk
                _api_reply(answer, f"restore of {stream}")
    return _api_reply(await nc.request(target, b"", timeout=API_TIMEOUT_S * 4), f"restore of {stream}")


def chunks_of(file: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := file.read(size):
        yield chunk


async def durable_places(nc: Client, stream: str) -> list[dict[str, Any]]:
    """The stream's durable consumers: each one's configuration and the last stream sequence below
    which everything is acknowledged. Taken before the snapshot, so each place is within it."""
    places, offset = [], 0
    while True:
        reply = _api_reply(
            await nc.request(
                subjects.consumer_list(stream), json.dumps({"offset": offset}).encode(), timeout=API_TIMEOUT_S
            ),
            f"consumers of {stream}",
        )
        found = reply.get("consumers") or []
        places += [
            {"config": c["config"], "acked_through": (c.get("ack_floor") or {}).get("stream_seq", 0)}
            for c in found
            if c["config"].get("durable_name")
        ]
        offset += len(found)
        if not found or offset >= reply.get("total", 0):
            return places


async def make_durables(nc: Client, stream: str, places: list[dict[str, Any]], replicas: int) -> None:
    """Each durable consumer again, from just after its place: what was delivered and not yet
    acknowledged comes again (its handlers are idempotent), nothing acknowledged does."""
    for place in places:
        config = {k: v for k, v in place["config"].items() if k not in ("opt_start_seq", "opt_start_time")}
        config["num_replicas"] = replicas
        if place["acked_through"]:
            config.update(deliver_policy="by_start_sequence", opt_start_seq=place["acked_through"] + 1)
        else:
            config["deliver_policy"] = "all"
        name = config["durable_name"]
        _api_reply(
            await nc.request(
                subjects.consumer_create(stream, name),
                json.dumps({"stream_name": stream, "config": config}).encode(),
                timeout=API_TIMEOUT_S,
            ),
            f"consumer {name}",
        )
