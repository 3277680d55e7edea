"""Reading the whole log fast, for a rebuild: Bus.read's messages, pulled and parsed by a child
process (replay/logpull.py) while this one decodes and applies them."""

from __future__ import annotations

import json
import os
from typing import AsyncIterator

import msgspec

from ..kernel.bus import Bus
from ..kernel.messages import Stored
from ..kernel.read import up_to
from ..kernel.subjects import STREAM
from . import logpull
from .frames import FrameReader, pipe, spawn

_FRAME = msgspec.msgpack.Decoder(list[Stored])


class ReadError(Exception):
    """The child process could not read the log."""


def pull_auth(bus: Bus) -> dict | None:
    """CONNECT credentials for a plain connection like the bus's; None where only nats-py can
    connect (TLS, or a nonce signed with an nkey)."""
    url, options = bus.nc.connected_url, bus.nc.options
    if url is None or url.scheme != "nats" or options.get("tls") or bus.signs_nonce:
        return None
    user, password, token = options.get("user"), options.get("password"), options.get("token")
    if user and password:
        return {"user": user, "pass": password}
    if url.username and url.password:
        return {"user": url.username, "pass": url.password}
    token = token or url.username
    return {"auth_token": token} if token else {}


def _holding(data: bytes) -> int:
    """The read end of a pipe that holds `data` (less than a pipe's buffer) and then ends."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    return read_end


async def read_all(
    bus: Bus, start_seq: int = 1, end_seq: int | None = None, batch: int = 5_000
) -> AsyncIterator[list[Stored]]:
    """Every message from `start_seq` up to what is stored now (or `end_seq`), in order, in
    batches: as Bus.read without filters, through a child process where the connection allows."""
    auth, url = pull_auth(bus), bus.nc.connected_url
    if auth is None or url is None:
        async for out in bus.read(start_seq=start_seq, end_seq=end_seq, batch=batch):
            yield out
        return
    async with bus.reading(start_seq) as info:
        if info.num_pending == 0:
            return
        total = info.num_pending or 0
        auth_end = _holding(json.dumps(auth).encode())
        read_end, write_end = pipe()
        try:
            child = await spawn(
                logpull,
                url.hostname or "127.0.0.1",
                str(url.port or 4222),
                STREAM,
                info.name,
                str(total),
                str(batch),
                stdin=auth_end,
                stdout=write_end,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(auth_end)
            os.close(write_end)  # the child's now: the pipe ends when the child does
        frames = FrameReader(read_end)
        taken = 0

        async def next_batch() -> list[Stored]:
            nonlocal taken
            if taken >= total:
                return []
            frame = await frames.frame()
            if frame is None:
                why = (await child.stderr.read()).decode(errors="replace").strip() if child.stderr else ""
                raise ReadError(why or f"the log reader exited with {await child.wait()}")
            out = _FRAME.decode(frame)
            taken += len(out)
            return out

        try:
            async for out in up_to(next_batch, end_seq):
                yield out
        finally:
            os.close(read_end)
            if child.returncode is None:
                child.kill()
                await child.wait()
