"""The backup drill of docs/operating.md: work, `darkroom backup`, `darkroom restore` into a fresh
folder, Darkroom started on it, `replay --verify`; the photos and the trash are there."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp

from darkroom.kernel.natsd import free_port
from tests.conftest import System, cli_env, culled, darkroom_cli, eventually, start_shipped


async def darkroom(*args: str, timeout: float = 60) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli(*args), env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode()


async def _completed(http: aiohttp.ClientSession, url: str, task_id: str) -> bool:
    async with http.get(f"{url}/api/tasks/{task_id}") as response:
        return response.status == 200 and (await response.json())["task"]["status"] == "completed"


async def _ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(f"{url}/readyz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def test_work_backed_up_restores_into_a_fresh_folder_whole(system: System, tmp_path: Path) -> None:
    await start_shipped(system)
    folder = await culled(system, "Drill")
    made_from = (folder / "A.jpg").stat().st_mtime_ns
    last = await system.bus.last_seq()

    dest = tmp_path / "backup"
    code, out = await darkroom("backup", str(dest), "--data", str(system.data_dir), "--nats", system.server.url)
    assert code == 0, out
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["stream"]["last_seq"] >= last and manifest["stream"]["first_seq"] == 1
    assert 0 < manifest["read_model"]["checkpoint"] <= manifest["stream"]["last_seq"]
    assert manifest["darkroom_version"] and manifest["nats_server_version"]
    paths = {entry["path"]: entry for entry in manifest["files"]}
    assert {
        "projects/Drill/A.jpg",
        "projects/Drill/.trash/B.jpg",
        "projects/Drill/.project.yaml",
        "stream/DARKROOM.snapshot",
        "read-model.sqlite",
    } <= set(paths)
    assert all(len(entry["sha256"]) == 64 for entry in paths.values())
    places = {c["config"]["durable_name"]: c["acked_through"] for c in manifest["stream"]["consumers"]}
    assert {"lane_priority", "lane_normal", "orchestrator"} <= set(places) and places["orchestrator"] > 0

    fresh = tmp_path / "fresh"
    code, out = await darkroom("restore", str(dest), "--data", str(fresh))
    assert code == 0, out
    assert (fresh / "projects" / "Drill" / "A.jpg").read_bytes() == (folder / "A.jpg").read_bytes()
    assert (fresh / "projects" / "Drill" / "A.jpg").stat().st_mtime_ns == made_from
    assert (fresh / "projects" / "Drill" / ".trash" / "B.jpg").is_file()

    port = free_port()
    up = await asyncio.create_subprocess_exec(
        *darkroom_cli("up", "--data", str(fresh), "--port", str(port)),
        env=cli_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            began = time.monotonic()
            while not await _ready(http, url):
                assert up.returncode is None and time.monotonic() - began < 30, "darkroom up did not get ready"
                await asyncio.sleep(0.1)
            async with http.get(f"{url}/api/projects/Drill/photos?min_seq={last}") as response:
                assert response.status == 200
                photos = {p["filename"]: p for p in (await response.json())["photos"]}
            async with http.get(f"{url}/api/projects/Drill/trash") as response:
                trash = await response.json()
            assert photos["A"]["keep_jpg"] and photos["A"]["jpg_available"]
            assert photos["A"]["thumbnail_status"] == "generated"
            assert "B" not in photos and "B.jpg" in json.dumps(trash["trash"]), trash
            # The lanes and the orchestrator go on from where they were: a new commit runs.
            async with http.put(
                f"{url}/api/projects/Drill/keep", json={"updates": [{"filename": "A", "keep_jpg": False}]}
            ) as response:
                assert response.status == 200
            async with http.post(f"{url}/api/projects/Drill/commit-changes") as response:
                task_id = (await response.json())["task_id"]
            await eventually(lambda: _completed(http, url, task_id), 30, "the commit after the restore")
        assert (fresh / "projects" / "Drill" / ".trash" / "A.jpg").is_file()
        code, out = await darkroom("replay", "--verify", "--data", str(fresh))
        assert code == 0 and "equals the live one" in out, out
    finally:
        up.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(up.wait(), 30) == 0, (await up.stderr.read()).decode()[-2000:]


async def test_a_damaged_backup_or_a_used_folder_is_refused_and_nothing_changes(system: System, tmp_path: Path) -> None:
    await start_shipped(system)
    await culled(system, "Damage")
    dest = tmp_path / "backup"
    code, out = await darkroom("backup", str(dest), "--data", str(system.data_dir), "--nats", system.server.url)
    assert code == 0, out
    code, out = await darkroom("backup", str(dest), "--data", str(system.data_dir), "--nats", system.server.url)
    assert code == 2 and "not an empty folder" in out, out

    code, out = await darkroom("restore", str(dest), "--data", str(system.data_dir))
    assert code == 2 and "is not empty" in out and "restore into a new data folder" in out, out

    photo = dest / "projects" / "Damage" / "A.jpg"
    photo.write_bytes(photo.read_bytes()[:-1] + b"\0")
    fresh = tmp_path / "fresh"
    code, out = await darkroom("restore", str(dest), "--data", str(fresh))
    assert code == 2 and f"{photo} is missing or not what the backup wrote" in out, out
    assert not fresh.exists()
