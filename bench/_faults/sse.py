"""An SSE client that behaves like a browser's EventSource: connected through the whole run, it
reconnects after `retry` with Last-Event-ID whenever the stream ends (the api was killed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp

SILENCE_S = 30.0  # the contract promises a line at least every 15 s: silence this long is a stall


@dataclass
class LiveClient:
    http: aiohttp.ClientSession
    url: str
    messages: list[tuple[str, str, str]] = field(default_factory=list)  # (id, event, data) as received
    first_id: str | None = None  # where the first connection began: the expected messages follow it
    last_id: str | None = None
    retry_s: float = 3.0  # EventSource's default until the server says otherwise
    connects: int = 0
    refused: int = 0  # connection attempts answered with an error status or not at all
    resets: int = 0
    stalls: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=SILENCE_S)
                async with self.http.get(self.url, headers=headers, timeout=timeout) as response:
                    if response.status != 200:
                        self.refused += 1
                    else:
                        self.connects += 1
                        await self._read(response)
            except TimeoutError:
                self.stalls += 1
            except (aiohttp.ClientError, ConnectionError):
                self.refused += 1
            await asyncio.sleep(self.retry_s)

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                elif name == "retry" and value.isdigit():
                    self.retry_s = int(value) / 1000
                else:
                    fields[name] = value
                continue
            # A blank line dispatches: the id is remembered even for a message without data.
            if "id" in fields:
                self.last_id = fields["id"]
                if self.first_id is None:
                    self.first_id = self.last_id
                    self.connected.set()
            event = fields.get("event", "message")
            if event == "reset":
                self.resets += 1
            elif data:
                self.messages.append((fields.get("id", ""), event, "\n".join(data)))
            fields, data = {}, []
