"""A TCP proxy between the browser and the api that a test can cut, as a network goes away: every open
connection is reset, and new ones are accepted and dropped at once until the test restores it. It can
also hold the browser's bytes at a chosen point of a request (the api has what came before), for the
test to cut there."""

from __future__ import annotations

import asyncio


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.port = 0
        self.down = False
        self.dropped = 0  # connections refused while down: the browser trying again
        self.browsers: set[asyncio.StreamWriter] = set()  # our side of the browser's connections
        self.servers: set[asyncio.StreamWriter] = set()  # our side of the api's
        self.marker: bytes | None = None
        self.nth = 0
        self.seen = 0
        self.budget: int | None = None  # bytes still let through once the marker was seen `nth` times
        self.then = 0
        self.went_down = asyncio.Event()
        self.held = asyncio.Event()  # the browser's bytes stopped at the chosen point

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold_after(self, marker: bytes, nth: int, then: int) -> None:
        """Let no more through once the browser has sent `marker` `nth` times and `then` bytes more."""
        self.marker, self.nth, self.seen, self.budget, self.then = marker, nth, 0, None, then

    def cut(self) -> None:
        self.down = True
        self.went_down.set()
        self.marker, self.budget = None, None  # once
        for writer in self.browsers:
            writer.transport.abort()  # the browser sees a reset, as when a network goes away
        for writer in self.servers:
            writer.close()  # the api gets what was sent, then the end: a client gone half-way
        self.browsers.clear()
        self.servers.clear()

    def restore(self) -> None:
        self.down = False
        self.went_down.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.dropped += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.browsers.add(writer)
        self.servers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False))
        self.browsers.discard(writer)
        self.servers.discard(up_writer)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, upstream: bool) -> None:
        try:
            while data := await source.read(1 << 16):
                if self.down:
                    break
                through, hold = self._watch(data) if upstream else (data, False)
                sink.write(through)
                await sink.drain()
                if hold:
                    self.held.set()
                    await self.went_down.wait()
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            if self.down and not upstream:
                sink.transport.abort()
            else:
                sink.close()

    def _watch(self, data: bytes) -> tuple[bytes, bool]:
        """What of the browser's bytes goes through, and whether to hold after them."""
        if self.marker is None:
            return data, False
        at = 0
        if self.budget is None:
            while (found := data.find(self.marker, at)) != -1:
                self.seen += 1
                at = found + len(self.marker)
                if self.seen == self.nth:
                    self.budget = self.then
                    break
            if self.budget is None:
                return data, False
        allowed = at + self.budget
        self.budget = max(0, self.budget - (len(data) - at))
        return data[:allowed], self.budget == 0
