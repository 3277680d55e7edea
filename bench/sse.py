#!/usr/bin/env python3
"""SSE fan-out: many clients on `GET /api/events` while events are stored at a steady rate.

A fresh nats-server and `darkroom up --nats URL` (a process of its own), `--projects` projects with
one photo each, and `--clients` SSE clients, each following one project (`?project=FOLDER`, as a
project page does). The bench stores `photo.keep_changed` events at `--rate` events/s spread over
the projects for `--seconds` (each one an `item` message, and a `pending_changes` one, to every
client of its project) and measures, for every message a client receives, its delivery lag: from
the event's `at` (when the bench made it, just before storing it) to when the client read it.

One more client follows every project and reads nothing until the run is over (a stalled browser
tab): it must delay no other client (the lag of the clients of its project is printed apart) and,
once it reads, lose nothing (every message of the run, in order, no `reset`).

    python bench/sse.py [--clients 1000] [--rate 1000] [--seconds 10] [--projects 100]

Prints the lag p50/p99/max over all clients, per-client delivery (messages expected and received),
the stalled client's check, and the CPU of darkroom and nats-server meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
from _common import BenchError, bench_main, cpu_seconds
from derivatives import Darkroom

from darkroom.kernel.bus import Bus
from darkroom.kernel.clock import parse_iso
from darkroom.kernel.events import PhotoFileAdded, PhotoKeepChanged
from darkroom.kernel.natsd import NatsServer

GOAL_P99_MS = 50.0
TICK_S = 0.01  # events are stored in small bursts this far apart


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else math.nan


class Photo(msgspec.Struct):
    updated_at: str


class Item(msgspec.Struct):
    """What the bench reads of an `item` message (the rest is skipped unread)."""

    photo: Photo


ITEM = msgspec.json.Decoder(Item)


@dataclass
class Client:
    """Reads one SSE stream; keeps when each `item` message was made and read, and the ids it saw.
    As little as it can per message, so that the bench's own reading adds little to the lag it measures."""

    url: str
    keep_ids: bool = False
    made_read: list[tuple[str, float]] = field(default_factory=list)
    items: int = 0
    ids: list[str] = field(default_factory=list)
    resets: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, http: aiohttp.ClientSession, stalled_until: asyncio.Event | None = None) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with http.get(self.url, timeout=timeout) as response:
            if response.status != 200:
                raise BenchError(f"GET {self.url} answered {response.status}")
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
            self.made_read.append((ITEM.decode(fields[b"data"]).photo.updated_at, now))

    @property
    def lags_ms(self) -> list[float]:
        made = {at: parse_iso(at).timestamp() for at in {at for at, _ in self.made_read}}
        return [(now - made[at]) * 1000 for at, now in self.made_read]


async def projects(http: aiohttp.ClientSession, base_url: str, bus: Bus, count: int) -> list[tuple[str, str]]:
    """`count` projects, each with one photo `P<n>` (a JPG the bench only announces): (id, folder)."""
    made = []
    for n in range(count):
        async with http.post(f"{base_url}/api/projects", json={"name": f"SSE bench {n}"}) as response:
            if response.status != 201:
                raise BenchError(f"POST /api/projects answered {response.status}: {await response.text()}")
            project = (await response.json())["project"]
        made.append((project["project_id"], project["folder"]))
    await bus.publish_all(
        [
            PhotoFileAdded(project_id=pid, source="user", filename=f"P{n}", name=f"P{n}.JPG", kind="jpg", size=1)
            for n, (pid, _) in enumerate(made)
        ]
    )
    return made


async def store_events(bus: Bus, made: list[tuple[str, str]], rate: float, seconds: float) -> int:
    """Keep flags of the projects' photos toggled, `rate` events/s round the projects; how many stored."""
    stored, began = 0, time.perf_counter()
    total = int(rate * seconds)
    while stored < total:
        due = min(total, int((time.perf_counter() - began) * rate) + 1)
        batch = []
        for n in range(stored, due):
            pid, _ = made[n % len(made)]
            keep = (n // len(made)) % 2 == 1  # the first round unticks, the next ticks again, …
            batch.append(PhotoKeepChanged(project_id=pid, source="user", filename=f"P{n % len(made)}", keep_jpg=keep))
        if batch:
            await bus.publish_all(batch)
            stored = due
        await asyncio.sleep(TICK_S)
    return stored


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="darkroom-sse-bench-"))
    server = NatsServer(root / "nats", args.sync)
    darkroom: Darkroom | None = None
    try:
        await server.start()
        darkroom = Darkroom(root, server.url, os.cpu_count() or 1)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            await darkroom.start(http)
            bus = await Bus.connect(server.url, "sse-bench")
            try:
                made = await projects(http, darkroom.base_url, bus, args.projects)
                await asyncio.sleep(0.5)  # the photos in the read model before the clients connect
                clients = [
                    Client(f"{darkroom.base_url}/api/events?project={made[n % len(made)][1]}")
                    for n in range(args.clients)
                ]
                stalled = Client(f"{darkroom.base_url}/api/events", keep_ids=True)
                release = asyncio.Event()
                tasks = [asyncio.ensure_future(c.run(http)) for c in clients]
                tasks.append(asyncio.ensure_future(stalled.run(http, release)))
                await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in [*clients, stalled])), 60)
                print(
                    f"bench: {args.clients} SSE clients over {args.projects} projects, and one stalled on all; "
                    f"storing {args.rate:g} events/s for {args.seconds:g} s",
                    flush=True,
                )
                assert server.process is not None
                pids = {"darkroom": darkroom.pid, "nats-server": server.process.pid, "bench": os.getpid()}
                cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
                began = time.perf_counter()
                stored = await store_events(bus, made, args.rate, args.seconds)
                expected_each = {folder: 0 for _, folder in made}
                for n in range(stored):
                    expected_each[made[n % len(made)][1]] += 1

                async def delivered() -> bool:
                    return all(c.items >= expected_each[c.url.rsplit("=", 1)[1]] for c in clients)

                deadline = time.monotonic() + args.drain_s
                while not await delivered() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                seconds = time.perf_counter() - began
                cpu = {name: (cpu_seconds(pid) - cpu[name], seconds) for name, pid in pids.items()}
                release.set()
                deadline = time.monotonic() + args.drain_s
                while stalled.items < stored and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                await bus.close()
            report(args, clients, stalled, made, stored, expected_each, cpu)
        return 0
    finally:
        if darkroom is not None:
            await darkroom.stop()
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(
    args: argparse.Namespace,
    clients: list[Client],
    stalled: Client,
    made: list[tuple[str, str]],
    stored: int,
    expected_each: dict[str, int],
    cpu: dict[str, tuple[float, float]],
) -> None:
    lags = [lag for c in clients for lag in c.lags_ms]
    short = [c for c in clients if c.items < expected_each[c.url.rsplit("=", 1)[1]]]
    beside = [lag for c in clients if c.url.endswith(f"={made[0][1]}") for lag in c.lags_ms]
    print(
        f"stored {stored} events; {len(lags):,} item messages delivered to {len(clients)} clients "
        f"({len(short)} short of what their project got)"
    )
    print(
        f"delivery lag: p50 {percentile(lags, 0.5):.1f} ms, p99 {percentile(lags, 0.99):.1f} ms, "
        f"max {max(lags, default=math.nan):.1f} ms; goal p99 <= {GOAL_P99_MS:g} ms: "
        f"{'ok' if percentile(lags, 0.99) <= GOAL_P99_MS else 'MISSED'}"
    )
    print(f"  clients of the stalled client's first project: p99 {percentile(beside, 0.99):.1f} ms")
    numbers = [tuple(map(int, i.split("."))) for i in stalled.ids]
    in_order = numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    whole = stalled.items == stored and stalled.resets == 0 and in_order
    print(
        f"stalled client, read after the run: {stalled.items} of {stored} item messages, "
        f"{stalled.resets} resets, ids {'in order, none twice' if in_order else 'OUT OF ORDER or repeated'}: "
        f"{'lost nothing' if whole else 'LOST MESSAGES'}"
    )
    shares = [f"{name} {used / seconds:.0%} ({used / stored * 1000:.2f})" for name, (used, seconds) in cpu.items()]
    print("CPU while storing and delivering, share of one core (ms a stored event): " + ", ".join(shares))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=1000, help="SSE clients, each on one project (default 1000)")
    p.add_argument("--rate", type=float, default=1000.0, help="events stored per second (default 1000)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long events are stored (default 10)")
    p.add_argument("--projects", type=int, default=100, help="projects the clients and events spread over")
    p.add_argument("--sync", default="2m", help="nats sync_interval (default 2m)")
    p.add_argument("--drain-s", type=float, default=60.0, help="how long delivery may take after the last event")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return bench_main(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
