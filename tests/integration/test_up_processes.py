"""`darkroom up` with its worker in a second process (up.processes = 2): what one process did still
happens across the two."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from darkroom.kernel.folders import projects_root
from darkroom.kernel.natsd import free_port
from tests.conftest import PHOTOS, cli_env, darkroom_cli, eventually, until_ready


async def test_an_uploaded_photos_derivatives_start_in_the_worker_process_while_the_upload_goes_on(
    tmp_path: Path,
) -> None:
    data, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    up = await asyncio.create_subprocess_exec(
        *darkroom_cli("up", "--data", str(data), "--port", str(port)),
        env=cli_env(DARKROOM_UP__PROCESSES="2"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until_ready(base, up, "darkroom up")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/projects", json={"name": "Early"}) as response:
                assert response.status == 201
                folder = (await response.json())["project"]["folder"]
            first, second = sorted((PHOTOS / "cameras").glob("*.jpg"))[:2]
            thumbnail = projects_root(data) / folder / ".thumb" / f"{first.stem}.webp"
            boundary = "----darkroomtest" + os.urandom(8).hex()
            go_on = asyncio.Event()

            def head(name: str) -> bytes:
                return (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{name}"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n"
                ).encode()

            async def body():
                yield head(first.name) + first.read_bytes() + b"\r\n" + head(second.name)
                rest = second.read_bytes()
                while not go_on.is_set():  # the second file trickles in: the upload is still going on
                    yield rest[:1]
                    rest = rest[1:]
                    await asyncio.sleep(0.01)
                yield rest + f"\r\n--{boundary}--\r\n".encode()

            async def post() -> int:
                headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
                async with http.post(f"{base}/api/projects/{folder}/upload", data=body(), headers=headers) as response:
                    return response.status

            posting = asyncio.create_task(post())
            # Only the worker process makes derivatives, and no task exists before the upload ends.
            await eventually(lambda: _now(thumbnail.exists()), 30, "the first photo's thumbnail during the upload")
            assert not posting.done()
            go_on.set()
            assert await posting == 201
    finally:
        up.terminate()
        assert await asyncio.wait_for(up.wait(), 15) == 0


async def test_the_image_processes_load_only_what_image_work_needs(tmp_path: Path) -> None:
    """Spawned image processes run their parent's main module again unless it has none: the CLI would
    bring its configuration, logging and NATS libraries into each (memory held by every one of them)."""
    data, port = tmp_path / "data", free_port()
    up = await asyncio.create_subprocess_exec(
        *darkroom_cli("up", "--data", str(data), "--port", str(port)),
        env=cli_env(DARKROOM_UP__PROCESSES="2", DARKROOM_PROCESSING__WORKERS="2"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until_ready(f"http://127.0.0.1:{port}", up, "darkroom up")
        images = await eventually(lambda: _image_processes(up.pid, 2), 30, "two image processes")
        for pid in images:
            libraries = Path(f"/proc/{pid}/maps").read_text()
            assert "PIL/_imaging" in libraries  # what the check below looks at is there to be seen
            assert "msgspec/_core" not in libraries, f"image process {pid} imported the CLI's libraries"
    finally:
        up.terminate()
        assert await asyncio.wait_for(up.wait(), 15) == 0


async def _image_processes(root: int, count: int) -> list[int] | None:
    """`count` processes below `root` that a process pool spawned, once each has imported Pillow."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                todo += [int(child) for child in children.read_text().split()]
            spawned = b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            if spawned and "PIL/_imaging" in Path(f"/proc/{pid}/maps").read_text():
                found.append(pid)
        except OSError:  # gone meanwhile
            continue
    return found if len(found) >= count else None


async def _now(value: bool) -> bool:
    return value
