"""The bench's bare upload server (bench/bare_upload.py) with real camera JPEGs: it saves what the
upload sends, refuses what Darkroom refuses, and derives every saved JPG; with --events it also keeps
the log an upload leaves in Darkroom, event for event."""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import nats

from darkroom.kernel.events import Codec, PhotoDerivativesUpdated, PhotoFileAdded
from darkroom.kernel.natsd import NatsServer, free_port
from darkroom.kernel.subjects import ALL, STREAM, subject_for
from tests.conftest import photo_bytes

BARE_UPLOAD = Path(__file__).resolve().parents[2] / "bench" / "bare_upload.py"
SENT = (
    ("canon.jpg", photo_bytes("cameras/Canon_40D.jpg")),
    ("portrait.jpg", photo_bytes("orientation/portrait_6.jpg")),
    ("fake.jpg", b"not a jpeg at all"),
)


@asynccontextmanager
async def bare_upload(folder: Path, *options: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The server on a free port, ready; on leaving, it must end with 0 on SIGTERM."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BARE_UPLOAD),
        str(folder),
        "--port",
        str(port),
        "--workers",
        "1",
        *options,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            for _ in range(300):
                try:
                    async with http.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    assert child.returncode is None, (await child.stderr.read()).decode()
                    await asyncio.sleep(0.05)
            yield http, base
    finally:
        if child.returncode is None:
            child.terminate()
        assert await asyncio.wait_for(child.wait(), 30) == 0


async def send_and_derive(http: aiohttp.ClientSession, base: str) -> None:
    form = aiohttp.FormData()
    for name, data in SENT:
        form.add_field("photos", data, filename=name, content_type="image/jpeg")
    async with http.post(f"{base}/upload", data=form) as response:
        status, body = response.status, await response.json()
    assert status == 201, body
    assert [f["name"] for f in body["files"]] == ["canon.jpg", "portrait.jpg"]
    assert [e["name"] for e in body["errors"]] == ["fake.jpg"]
    async with http.get(f"{base}/derived", params={"n": "2"}) as response:
        assert await response.json() == {"derived": 2, "failed": 0}


async def test_the_bare_upload_server_saves_and_derives_what_it_is_sent(tmp_path: Path) -> None:
    async with bare_upload(tmp_path) as (http, base):
        await send_and_derive(http, base)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["canon.jpg", "portrait.jpg"]
    assert sorted(p.name for p in (tmp_path / ".thumb").iterdir()) == ["canon.webp", "portrait.webp"]
    assert sorted(p.name for p in (tmp_path / ".preview").iterdir()) == ["canon.jpg", "portrait.jpg"]


async def test_with_events_it_stores_the_log_an_upload_leaves_in_darkroom(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    async with bare_upload(folder, "--events", nats_server.url) as (http, base):
        await send_and_derive(http, base)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        assert (await js.stream_info(STREAM)).config.subjects == [ALL]
        sub = await js.subscribe(ALL, ordered_consumer=True)
        codec, log, events = Codec(), [], []
        for _ in range(15):
            msg = await sub.next_msg(timeout=10)
            event = codec.decode(msg.data)
            assert msg.subject == subject_for(event)
            log.append((event.type, getattr(event, "filename", None) or getattr(event, "job_type", None)))
            events.append(event)
        assert (await js.stream_info(STREAM)).state.messages == 15
    finally:
        await nc.close()
    # Each photo's claim and file as it lands; the task once the request is over (the refused file has none).
    assert log[:4] == [
        ("basename.claimed", "canon"),
        ("photo.file_added", "canon"),
        ("basename.claimed", "portrait"),
        ("photo.file_added", "portrait"),
    ]
    assert log[4:] == [
        ("task.requested", None),
        ("job.requested", "upload_postprocess"),
        ("job.started", "upload_postprocess"),
        ("photo.derivatives_updated", "canon"),
        ("photo.derivatives_updated", "portrait"),
        ("job.completed", "upload_postprocess"),
        ("job.requested", "manifest_check"),
        ("job.completed", "manifest_check"),
        ("job.requested", "folder_check"),
        ("job.completed", "folder_check"),
        ("task.completed", None),
    ]
    added = [e for e in events if isinstance(e, PhotoFileAdded)]
    assert [(e.name, e.kind, len(e.sha256)) for e in added] == [("canon.jpg", "jpg", 64), ("portrait.jpg", "jpg", 64)]
    derived = [e for e in events if isinstance(e, PhotoDerivativesUpdated)]
    assert [(e.made_from, e.thumbnail_status, e.metadata.model) for e in derived] == [
        ("canon.jpg", "generated", "Canon EOS 40D"),
        ("portrait.jpg", "generated", None),
    ]
