#!/usr/bin/env python3
"""SSE clients for bench/sse.py, in a process of their own: one process reading 1,000 streams (some
20,000 messages a second) lags by itself, and its pauses (a full garbage collection over every
message kept) would count as Darkroom's. bench/sse.py starts a few of these and talks to each over
its stdin and stdout, one JSON line a step:

    in:  {"urls": [...]}                          connect a client to each (each URL ends `=FOLDER`)
    out: {"connected": N}                          every stream answered 200; the run begins
    in:  {"expected": {FOLDER: N}, "drain_s": S}   the run is over: this many item messages each
    out: {"clients": [{"url", "items", "resets", "lags_ms"}], "cpu_s": C}   once each has them, or S s
         passed; C: the CPU this process used since it answered `connected`
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from array import array
from dataclasses import dataclass, field
from functools import lru_cache

import aiohttp
import msgspec

from darkroom.kernel.clock import parse_iso


class Photo(msgspec.Struct):
    updated_at: str


class Item(msgspec.Struct):
    """What the bench reads of an `item` message (the rest is skipped unread)."""

    photo: Photo


ITEM = msgspec.json.Decoder(Item)


@lru_cache(maxsize=4096)
def made_at(at: str) -> float:
    """An event's `at` as a Unix time; every client of its project reads the same one."""
    return parse_iso(at).timestamp()


@dataclass
class Client:
    """Reads one SSE stream; keeps each `item` message's delivery lag, from the event's `at` (when the
    bench made it, just before storing it) to when it was read, in a flat array: as little as it can
    per message, and nothing for the garbage collector to walk."""

    url: str
    keep_ids: bool = False
    lags_ms: array = field(default_factory=lambda: array("d"))
    items: int = 0
    ids: list[str] = field(default_factory=list)
    resets: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def folder(self) -> str:
        return self.url.rsplit("=", 1)[1]

    async def run(self, http: aiohttp.ClientSession, stalled_until: asyncio.Event | None = None) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with http.get(self.url, timeout=timeout) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {self.url} answered {response.status}")
            self.connected.set()
            if stalled_until is not None:
                await stalled_until.wait()  # nothing read meanwhile: the server's writes back up
            pending = b""
            async for chunk in response.content.iter_any():
                now = time.time()
                pending += chunk
                *messages, pending = pending.split(b"\n\n")
                for message in messages:
                    self._message(message, now)

    def _message(self, message: bytes, now: float) -> None:
        fields = dict(line.split(b": ", 1) for line in message.split(b"\n") if b": " in line and line[:1] != b":")
        event = fields.get(b"event")
        if event == b"reset":
            self.resets += 1
        if self.keep_ids and event is not None and b"id" in fields:
            self.ids.append(fields[b"id"].decode())
        if event == b"item":
            self.items += 1
            self.lags_ms.append((now - made_at(ITEM.decode(fields[b"data"]).photo.updated_at)) * 1000)


async def read_streams() -> None:
    lines = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)

    async def request() -> dict:
        return json.loads(await lines.readline())

    def answer(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    clients = [Client(url) for url in (await request())["urls"]]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        tasks = [asyncio.ensure_future(c.run(http)) for c in clients]
        connected = asyncio.gather(*(c.connected.wait() for c in clients))
        await asyncio.wait([connected, *tasks], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                task.result()  # a stream refused: say why
        await connected
        gc.freeze()  # what is set up now lives for the run: no collection walks it again
        answer({"connected": len(clients)})
        began = time.process_time()
        told = await request()
        expected, deadline = told["expected"], time.monotonic() + told["drain_s"]
        while any(c.items < expected[c.folder] for c in clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    answer(
        {
            "cpu_s": time.process_time() - began,
            "clients": [
                {"url": c.url, "items": c.items, "resets": c.resets, "lags_ms": c.lags_ms.tolist()} for c in clients
            ],
        }
    )


if __name__ == "__main__":
    asyncio.run(read_streams())
