"""Nothing dies silently: loops that meet a failing disk or a missing consumer recover or say so.

A full disk is made real without root: RLIMIT_FSIZE, set on the running projector process with
prlimit(2), makes every write to a regular file fail in the kernel (EFBIG; Python ignores SIGXFSZ),
which SQLite reports as a disk I/O error, exactly where a full disk fails it (ENOSPC: "database or
disk is full"). Lifting the limit frees the "disk" again, without restarting anything.
"""

from __future__ import annotations

import asyncio
import resource
import sys

import aiohttp
import pytest

from darkroom.kernel.natsd import free_port
from darkroom.kernel.provision import provision
from darkroom.kernel.subjects import lane_consumer
from darkroom.projector.store import read_model_path
from darkroom.replay.rebuild import replay
from tests.conftest import System, cli_env, darkroom_cli, eventually

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prlimit(2) on another process is Linux's")


async def _get(url: str) -> tuple[int, dict | str]:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body
    except aiohttp.ClientConnectionError as exc:
        return 0, str(exc)


async def _status(url: str, wanted: int) -> dict | str | None:
    status, body = await _get(url)
    return body if status == wanted else None


async def _service(system: System, command: str, port: int, *args: str) -> asyncio.subprocess.Process:
    """`darkroom <command> --health-port port` against the test's server and data, once ready."""
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli(
            command, "--nats", system.server.url, "--data", str(system.data_dir), "--health-port", str(port), *args
        ),
        env=cli_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )

    async def ready():
        assert process.returncode is None, (await process.stderr.read()).decode()
        return await _status(f"http://127.0.0.1:{port}/readyz", 200)

    await eventually(ready, 20, f"darkroom {command} to be ready")
    return process


async def _stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.terminate()
    return await asyncio.wait_for(process.wait(), 15)


async def test_the_projector_rides_out_a_full_disk_and_catches_up_when_it_frees(system: System) -> None:
    port = free_port()
    projector = await _service(system, "projector", port)  # first: the others read its read model
    await system.start(roles=("orchestrator", "worker", "api"))
    health = f"http://127.0.0.1:{port}"
    try:
        before = await system.start_task("three")
        assert (await system.wait_task(before["id"]))["task"]["status"] == "completed"

        resource.prlimit(projector.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))  # the disk is full
        during = await system.start_task("three")  # stored in the log; the read model cannot take it
        why = await eventually(lambda: _status(f"{health}/readyz", 503), 10, "the projector's /readyz to say 503")
        assert "projector down" in why["error"] and "disk I/O error" in why["error"], why
        assert (await _get(f"{health}/healthz"))[0] == 200  # alive: it retries, it has not given up
        assert await eventually(lambda: _status(f"{system.url}/readyz", 503), 10, "the api's /readyz to say 503")
        await asyncio.sleep(1.0)  # a while of failing writes: the projector must still be there after them
        assert projector.returncode is None

        resource.prlimit(projector.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        await eventually(lambda: _status(f"{health}/readyz", 200), 10, "the projector's /readyz to say 200 again")
        assert (await system.wait_task(during["id"]))["task"]["status"] == "completed"
        after = await system.start_task("three")
        assert (await system.wait_task(after["id"]))["task"]["status"] == "completed"
        await eventually(lambda: _status(f"{system.url}/readyz", 200), 10, "the api's /readyz to say 200 again")
        result = await replay(
            system.bus, system.data_dir.parent / "verify.sqlite", read_model_path(system.data_dir), verify=True
        )
        assert result.differences == [], result.differences[:20]
    finally:
        assert await _stop(projector) == 0


async def test_each_split_service_serves_its_own_health_and_readiness(system: System) -> None:
    api = await system.start(roles=("api",))
    ports = {command: free_port() for command in ("projector", "orchestrator", "worker")}
    processes = [await _service(system, command, port) for command, port in ports.items()]
    try:
        for port in ports.values():
            base = f"http://127.0.0.1:{port}"
            assert (await _get(f"{base}/healthz"))[0] == 200
            status, text = await _get(f"{base}/metrics")
            assert status == 200 and "darkroom_loops_down 0" in text, text
        assert "darkroom_projector_lag" in (await _get(f"http://127.0.0.1:{ports['projector']}/metrics"))[1]
        assert "darkroom_worker_busy_slots" in (await _get(f"http://127.0.0.1:{ports['worker']}/metrics"))[1]

        # A lane consumer goes missing: the workers cannot get work from it, and say so.
        await system.bus.jsm.delete_consumer("DARKROOM", lane_consumer("priority"))
        worker = f"http://127.0.0.1:{ports['worker']}/readyz"
        why = await eventually(lambda: _status(worker, 503), 10, "the worker's /readyz to say 503")
        assert "lane_priority" in why["error"], why
        await provision(system.bus.js, api.config)
        await eventually(lambda: _status(worker, 200), 10, "the worker's /readyz to say 200 again")

        # The orchestrator's consumer goes missing: it says so too.
        await system.bus.jsm.delete_consumer("DARKROOM", "orchestrator")
        orchestrator = f"http://127.0.0.1:{ports['orchestrator']}/readyz"
        why = await eventually(lambda: _status(orchestrator, 503), 10, "the orchestrator's /readyz to say 503")
        assert "orchestrator" in why["error"], why
    finally:
        for process in processes:
            assert await _stop(process) == 0
