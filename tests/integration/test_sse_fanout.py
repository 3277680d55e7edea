"""A client that stops reading its SSE stream (a stalled tab) holds up no other client, and loses
nothing: once it reads again it gets every message, in order, once; or a `reset` when what it missed
is no longer in the outbox, never a silent gap (CONTRACT §3)."""

from __future__ import annotations

import asyncio
import re
import socket
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import aiohttp
import pytest

from darkroom.kernel.events import PhotoFileAdded, PhotoKeepChanged
from darkroom.projector import engine as engine_module
from darkroom.projector.queries import OutboxTail, parse_event_id
from tests.conftest import SSEClient, System, create_project, eventually

BATCH = 100  # toggles per round: a client that reads takes each round in one go, far below its queue's bound
STALLED_RCVBUF = 4096  # the stalled client's receive window: the server's writes back up soon
BEHIND = re.compile(r"^darkroom_sse_behind_total (\S+)$", re.MULTILINE)


def small_window(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    return sock


@asynccontextmanager
async def stalled(url: str) -> AsyncIterator[tuple[SSEClient, asyncio.Event]]:
    """A client that reads nothing until the event is set, on a connection of its own."""
    reading = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=small_window)) as http:
        async with SSEClient(http, url, reading=reading) as client:
            yield client, reading


async def fell_behind(system: System) -> float:
    async with system.http.get(f"{system.url}/metrics") as response:
        text = await response.text()
        found = BEHIND.search(text)
    return float(found[1]) if found else 0.0


def seq_of(message: tuple[str, str, dict]) -> int:
    position = parse_event_id(message[0])
    assert position is not None, message
    return position[0]


async def photo(system: System, name: str) -> dict:
    """A project with one photo `P` in the read model (its file only announced on the bus)."""
    assert system.bus is not None
    project = await create_project(system, name)
    await system.bus.publish(
        PhotoFileAdded(project_id=project["project_id"], source="user", filename="P", name="P.JPG", kind="jpg", size=1)
    )
    await eventually(lambda: _has_photo(system, project["folder"]), 10, "the photo in the read model")
    return project


async def _has_photo(system: System, folder: str) -> bool:
    status, body, _ = await system.request("GET", f"/api/projects/{folder}/photos")
    return status == 200 and len(body["photos"]) == 1


async def toggle(system: System, project: dict, reader: SSEClient, rounds: int = 0) -> int:
    """Rounds of keep toggles on the bus until the server has given up on a client's queue (and
    `rounds` more), each round read by `reader` before the next; the last sequence stored."""
    assert system.bus is not None
    last, more, n = 0, rounds, 0
    while more > 0 or not await fell_behind(system):
        assert n < 200 * BATCH, "no client fell behind its queue"
        more -= await fell_behind(system) > 0
        await system.bus.publish_all(
            [
                PhotoKeepChanged(project_id=project["project_id"], source="user", filename="P", keep_jpg=i % 2 == 1)
                for i in range(n, n + BATCH)
            ]
        )
        n += BATCH
        last = await system.bus.last_seq()
        await reader.wait_for(lambda m: m[1] == "item" and seq_of(m) >= last, 10, f"the reader at {last}")
    return last


async def test_a_client_that_stops_reading_holds_up_no_other_and_then_gets_every_message_once(system: System) -> None:
    await system.start()
    project = await photo(system, "Stalled")
    url = f"{system.url}/api/events?project={project['folder']}"
    async with SSEClient(system.http, url) as reader, stalled(url) as (late, reading):
        before = await system.bus.last_seq()
        # Every round reaches the reader while the other client reads nothing, until the server
        # gives up queueing for that one, and some more.
        last = await toggle(system, project, reader, rounds=3)
        assert await fell_behind(system) == 1  # the stalled one; the reader never was
        reading.set()
        await late.wait_for(lambda m: m[1] == "item" and seq_of(m) >= last, 20, "the stalled client's last message")
    got = [m[0] for m in late.messages if seq_of(m) > before]
    assert got == [m[0] for m in reader.messages if seq_of(m) > before]
    assert len(got) >= 2 * 4 * BATCH  # an item and pending_changes for each toggle
    assert "reset" not in [m[1] for m in late.messages]


async def test_a_client_left_behind_past_what_the_outbox_keeps_gets_a_reset_not_a_gap(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PRUNE_EVERY", 1)
    monkeypatch.setattr(OutboxTail, "KEEP", 16)
    runtime = await system.start()
    assert runtime.projector is not None
    runtime.projector.projector.outbox_keep = 2 * BATCH
    project = await photo(system, "Left behind")
    url = f"{system.url}/api/events?project={project['folder']}"
    async with SSEClient(system.http, url) as reader, stalled(url) as (late, reading):
        # Past the point where the stalled client was cut loose, the outbox is pruned beyond it.
        await toggle(system, project, reader, rounds=4)
        reading.set()
        await late.wait_for(lambda m: m[1] == "reset", 20, "a reset for the stalled client")
        last = await toggle(system, project, reader, rounds=1)  # and the stream goes on from there
        await late.wait_for(lambda m: m[1] == "item" and seq_of(m) >= last, 10, "the stalled client's last message")
    events = [m[1] for m in late.messages]
    assert events.count("reset") == 1
    positions = [parse_event_id(m[0]) for m in late.messages]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)  # in order, once
    reset = late.messages[events.index("reset")]
    assert [m for m in late.messages if seq_of(m) > seq_of(reset)] == [
        m for m in reader.messages if seq_of(m) > seq_of(reset)
    ]
