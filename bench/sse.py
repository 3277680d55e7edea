#!/usr/bin/env python3
"""SSE fan-out: many clients on `GET /api/events` while events are stored at a steady rate.

A fresh nats-server and `darkroom up --nats URL` (a process of its own), `--projects` projects with
one photo each, and `--clients` SSE clients, each following one project (`?project=FOLDER`, as a
project page does). The bench stores `photo.keep_changed` events at `--rate` events/s spread over
the projects for `--seconds` (each one an `item` message, and a `pending_changes` one, to every
client of its project) and measures, for every message a client receives, its delivery lag: from
the event's `at` (when the bench made it, just before storing it) to when the client read it.
The clients are read in `--client-processes` processes of their own (bench/sse_readers.py): one
process reading every stream lags by itself, and its pauses would count as Darkroom's.

One more client follows every project and reads nothing until the run is over (a stalled browser
tab): it must delay no other client (the lag of the clients of its project is printed apart) and,
once it reads, lose nothing (every message of the run, in order, no `reset`).

    python bench/sse.py [--clients 1000] [--rate 1000] [--seconds 10] [--projects 100] [--client-processes 4]

Prints the lag p50/p99/max over all clients, per-client delivery (messages expected and received),
the stalled client's check, and the CPU of darkroom, nats-server and the bench's processes meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import aiohttp
from _common import BenchError, bench_main, cpu_seconds
from derivatives import Darkroom
from sse_readers import Client

from darkroom.kernel.bus import Bus
from darkroom.kernel.events import PhotoFileAdded, PhotoKeepChanged
from darkroom.kernel.natsd import NatsServer

GOAL_P99_MS = 50.0
TICK_S = 0.01  # events are stored in small bursts this far apart
READERS = Path(__file__).with_name("sse_readers.py")


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class Delivered:
    """What one client read, as its reader process tells it."""

    url: str
    items: int
    resets: int
    lags_ms: list[float]

    @property
    def folder(self) -> str:
        return self.url.rsplit("=", 1)[1]


class Readers:
    """bench/sse_readers.py: a process reading some of the clients' streams."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def connect(cls, urls: list[str]) -> Readers:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(READERS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,  # the last answer: every lag of its clients on one line
        )
        readers = cls(process)
        await readers.tell({"urls": urls})
        await readers.answer()  # every stream open
        return readers

    async def tell(self, message: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def answer(self) -> dict:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise BenchError(f"bench/sse_readers.py exited with {await self.process.wait()}")
        return json.loads(line)

    async def delivered(self, expected: dict[str, int], drain_s: float) -> tuple[list[Delivered], float]:
        """What each client read once it has all `expected` (or `drain_s` passed), and the CPU used."""
        await self.tell({"expected": expected, "drain_s": drain_s})
        answer = await self.answer()
        await self.process.wait()
        return [Delivered(**c) for c in answer["clients"]], answer["cpu_s"]

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


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
    readers: list[Readers] = []
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
                urls = [f"{darkroom.base_url}/api/events?project={made[n % len(made)][1]}" for n in range(args.clients)]
                processes = max(1, min(args.client_processes, args.clients))
                readers = list(await asyncio.gather(*(Readers.connect(urls[n::processes]) for n in range(processes))))
                stalled = Client(f"{darkroom.base_url}/api/events", keep_ids=True)
                release = asyncio.Event()
                reading = asyncio.ensure_future(stalled.run(http, release))
                await asyncio.wait_for(stalled.connected.wait(), 60)
                print(
                    f"bench: {args.clients} SSE clients over {args.projects} projects in {processes} processes, "
                    f"and one stalled on all; storing {args.rate:g} events/s for {args.seconds:g} s",
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
                ending = await asyncio.gather(*(r.delivered(expected_each, args.drain_s) for r in readers))
                seconds = time.perf_counter() - began
                cpu = {name: (cpu_seconds(pid) - cpu[name], seconds) for name, pid in pids.items()}
                cpu[f"bench readers ({len(readers)})"] = (sum(used for _, used in ending), seconds)
                clients = [c for delivered, _ in ending for c in delivered]
                release.set()
                deadline = time.monotonic() + args.drain_s
                while stalled.items < stored and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
            finally:
                await bus.close()
            report(args, clients, stalled, made, stored, expected_each, cpu)
        return 0
    finally:
        await asyncio.gather(*(r.stop() for r in readers))
        if darkroom is not None:
            await darkroom.stop()
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(
    args: argparse.Namespace,
    clients: list[Delivered],
    stalled: Client,
    made: list[tuple[str, str]],
    stored: int,
    expected_each: dict[str, int],
    cpu: dict[str, tuple[float, float]],
) -> None:
    lags = [lag for c in clients for lag in c.lags_ms]
    short = [c for c in clients if c.items < expected_each[c.folder]]
    beside = [lag for c in clients if c.folder == made[0][1] for lag in c.lags_ms]
    print(
        f"stored {stored} events; {len(lags):,} item messages delivered to {len(clients)} clients "
        f"({len(short)} short of what their project got, {sum(c.resets for c in clients)} resets)"
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
    p.add_argument("--client-processes", type=int, default=4, help="processes the clients are read in (default 4)")
    p.add_argument("--sync", default="2m", help="nats sync_interval (default 2m)")
    p.add_argument("--drain-s", type=float, default=60.0, help="how long delivery may take after the last event")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return bench_main(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
