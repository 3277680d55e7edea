"""The bench's bare upload server (bench/bare_upload.py) with real camera JPEGs: it saves what the
upload sends, refuses what Darkroom refuses, and derives every saved JPG."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from darkroom.kernel.natsd import free_port
from tests.conftest import photo_bytes

BARE_UPLOAD = Path(__file__).resolve().parents[2] / "bench" / "bare_upload.py"


async def test_the_bare_upload_server_saves_and_derives_what_it_is_sent(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BARE_UPLOAD),
        str(tmp_path),
        "--port",
        str(port),
        "--workers",
        "1",
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
            form = aiohttp.FormData()
            for name, data in (
                ("canon.jpg", photo_bytes("cameras/Canon_40D.jpg")),
                ("portrait.jpg", photo_bytes("orientation/portrait_6.jpg")),
                ("fake.jpg", b"not a jpeg at all"),
            ):
                form.add_field("photos", data, filename=name, content_type="image/jpeg")
            async with http.post(f"{base}/upload", data=form) as response:
                status, body = response.status, await response.json()
            assert status == 201, body
            assert [f["name"] for f in body["files"]] == ["canon.jpg", "portrait.jpg"]
            assert [e["name"] for e in body["errors"]] == ["fake.jpg"]
            async with http.get(f"{base}/derived", params={"n": "2"}) as response:
                assert await response.json() == {"derived": 2, "failed": 0}
    finally:
        if child.returncode is None:
            child.terminate()
        assert await asyncio.wait_for(child.wait(), 30) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["canon.jpg", "portrait.jpg"]
    assert sorted(p.name for p in (tmp_path / ".thumb").iterdir()) == ["canon.webp", "portrait.webp"]
    assert sorted(p.name for p in (tmp_path / ".preview").iterdir()) == ["canon.jpg", "portrait.jpg"]
