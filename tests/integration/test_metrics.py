"""/metrics of every process, scraped from real processes doing real work: the exposition parses with
prometheus_client's parser, `promtool check metrics` (Debian's prometheus package) finds nothing
wrong, and the counters say what happened."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from darkroom.kernel.natsd import free_port
from tests.conftest import (
    SSEClient,
    System,
    cli_env,
    create_project,
    darkroom_cli,
    eventually,
    photo_bytes,
    start_shipped,
    until_ready,
    upload,
)
from tests.jobtypes import DEFINITIONS

PROMTOOL = shutil.which("promtool")
SLOW_PHOTO = "lens/Nikon_D70s.jpg"  # some 0.2 s of image work: long enough to be seen waiting
# Every process, whatever it runs: what it stored, its loops, its NATS connections, the log's size.
COMMON = {
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "python_info",
    "darkroom_events_published",
    "darkroom_loops_down",
    "darkroom_nats_connected",
    "darkroom_nats_reconnects",
    "darkroom_stream_messages",
    "darkroom_stream_bytes",
    "darkroom_lane_depth",
}


def families(text: str) -> dict[str, dict[tuple, float]]:
    """name -> {(sample name, sorted labels): value}, as a scraper reads the text."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        samples = out.setdefault(family.name, {})
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, family: str, sample: str | None = None, **labels: str) -> float | None:
    return found.get(family, {}).get((sample or family, tuple(sorted(labels.items()))))


def promtool(text: str) -> str:
    """What `promtool check metrics` says about the text: "" when it passes."""
    if PROMTOOL is None:
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    return "" if result.returncode == 0 else f"exit {result.returncode}: {result.stdout}{result.stderr}"


async def scrape(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(f"{base}/metrics") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4"), response.headers
        return await response.text()


async def start(system: System, command: str, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *darkroom_cli(command, "--nats", system.server.url, "--data", str(system.data_dir), *args),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def job_types_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `darkroom` command that runs the test job types."""
    definitions = tmp_path / "definitions.json"
    definitions.write_bytes(msgspec.json.encode(DEFINITIONS))
    return cli_env(
        DARKROOM_TASKS__DEFINITIONS=str(definitions),
        DARKROOM_PIPELINE__PLUGINS="tests.jobtypes",
        DARKROOM_MAINTENANCE__INTERVAL_S="0",
        DARKROOM_PROCESSING__WORKERS="1",
        **extra,
    )


async def test_every_split_process_serves_valid_metrics_that_count_its_work(system: System, tmp_path: Path) -> None:
    env = job_types_env(tmp_path, DARKROOM_PIPELINE__BACKOFF_BASE_S="0.1", DARKROOM_PIPELINE__BACKOFF_MAX_S="0.2")
    ports = {command: free_port() for command in ("projector", "orchestrator", "worker", "api")}
    processes: dict[str, asyncio.subprocess.Process] = {}
    http = system.http
    try:
        for command in ("projector", "orchestrator", "worker"):  # the projector first: the others read its model
            processes[command] = await start(system, command, "--health-port", str(ports[command]), env=env)
            await until_ready(f"http://127.0.0.1:{ports[command]}", processes[command], f"darkroom {command}")
        processes["api"] = await start(system, "api", "--port", str(ports["api"]), env=env)
        api = f"http://127.0.0.1:{ports['api']}"
        await until_ready(api, processes["api"], "darkroom api")

        async def run(task_type: str, items: list[str] | None = None) -> str:
            async with http.post(f"{api}/api/tasks", json={"type": task_type, "items": items or []}) as response:
                assert response.status == 202, await response.text()
                return (await response.json())["task"]["id"]

        async def status(task_id: str) -> str | None:
            async with http.get(f"{api}/api/tasks/{task_id}") as response:
                return (await response.json()).get("task", {}).get("status")  # 404 until the model has it

        async def ended(task_id: str, wanted: str) -> None:
            await eventually(lambda: _is(status(task_id), wanted), 30, f"task {task_id} to be {wanted}")

        await ended(await run("three"), "completed")
        await ended(await run("flaky"), "failed")  # two attempts tried again, the third fails
        await ended(await run("fails_second"), "failed")
        slow = await run("slow_items", [f"i{n}" for n in range(100)])

        async def job_running(task_id: str) -> bool:
            async with http.get(f"{api}/api/tasks/{task_id}") as response:
                return any(job["status"] == "running" for job in (await response.json()).get("jobs", []))

        # Its job, not only the task: a job canceled before a worker started it is the orchestrator's to count.
        await eventually(lambda: job_running(slow), 10, "the slow task's job to run")
        async with http.post(f"{api}/api/tasks/{slow}/cancel") as response:
            assert response.status == 202
        await ended(slow, "canceled")
        async with http.get(f"{api}/api/no-such-route/1") as response:
            assert response.status == 404

        async with SSEClient(http, f"{api}/api/events"), SSEClient(http, f"{api}/api/events?show_maintenance=true"):
            texts = {command: await scrape(http, f"http://127.0.0.1:{port}") for command, port in ports.items()}
        for command, text in texts.items():
            assert promtool(text) == "", f"darkroom {command}:\n{text}"
        found = {command: families(text) for command, text in texts.items()}
        for command, seen in found.items():
            assert COMMON <= seen.keys(), f"darkroom {command} lacks {COMMON - seen.keys()}"
            assert value(seen, "darkroom_loops_down") == 0
            assert value(seen, "darkroom_stream_messages") > 0 and value(seen, "darkroom_stream_bytes") > 0
            assert value(seen, "process_resident_memory_bytes") > 0

        worker, orchestrator = found["worker"], found["orchestrator"]
        jobs = "darkroom_jobs_{}".format
        assert value(worker, jobs("completed"), jobs("completed_total"), type="noop") >= 4
        assert value(worker, jobs("retried"), jobs("retried_total"), type="flaky") == 2
        assert value(worker, jobs("failed"), jobs("failed_total"), type="flaky") == 1
        assert value(worker, jobs("failed"), jobs("failed_total"), type="fail") == 1
        assert value(worker, jobs("canceled"), jobs("canceled_total"), type="items") == 1
        assert value(worker, jobs("failed"), jobs("failed_total"), type="hang") == 0  # known types start at 0
        assert value(worker, "darkroom_job_duration_seconds", "darkroom_job_duration_seconds_count", type="noop") >= 4
        assert value(worker, "darkroom_worker_busy_slots", lane="priority") == 0
        assert value(worker, "darkroom_nats_connected", connection="worker") == 1
        # The orchestrator has the same families: it counts the jobs it cancels before they run.
        assert value(orchestrator, jobs("canceled"), jobs("canceled_total"), type="items") == 0
        assert value(orchestrator, jobs("completed"), jobs("completed_total"), type="noop") == 0
        assert value(orchestrator, "darkroom_events_published", "darkroom_events_published_total") > 0

        projector = found["projector"]
        assert value(projector, "darkroom_events_applied", "darkroom_events_applied_total") > 0
        assert value(projector, "darkroom_projector_lag") is not None
        assert "darkroom_http_requests" not in projector

        served = found["api"]
        assert value(served, "darkroom_sse_clients") == 2
        requests = "darkroom_http_requests", "darkroom_http_requests_total"
        assert value(served, *requests, route="/api/tasks", method="POST", status="202") == 4
        assert value(served, *requests, route="/api/tasks/{task_id}/cancel", method="POST", status="202") == 1
        assert value(served, *requests, route="/api/tasks/{task_id}", method="GET", status="200") > 4
        assert value(served, *requests, route="unmatched", method="GET", status="404") == 1  # never the raw path
        assert value(served, "darkroom_jobs", lane="priority", type="fail", status="failed") == 1
        assert value(served, "darkroom_dead_letters") == 0
        assert value(served, "darkroom_lane_paused", lane="normal") == 0
        assert "darkroom_job_duration_seconds" not in served  # measured where jobs run
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.terminate()
        for command, process in processes.items():
            assert await asyncio.wait_for(process.wait(), 15) == 0, f"darkroom {command}"


async def _is(answer, wanted: str) -> bool:
    return await answer == wanted


async def test_darkroom_up_serves_every_family_in_one_valid_exposition(system: System, tmp_path: Path) -> None:
    """`darkroom up` runs all four services in one process: one registry, each family once."""
    await system.start()
    await system.wait_task((await system.start_task("flaky"))["id"])
    text = await scrape(system.http, system.url)
    assert promtool(text) == "", text
    found = families(text)
    for family in (
        "darkroom_events_applied",
        "darkroom_worker_busy_slots",
        "darkroom_jobs_retried",
        "darkroom_http_requests",
        "darkroom_sse_clients",
        "darkroom_jobs",
        "darkroom_projector_lag",
    ):
        assert family in found, family
    assert value(found, "darkroom_jobs_retried", "darkroom_jobs_retried_total", type="flaky") == 2
    for role in ("projector", "orchestrator", "worker", "api"):
        assert value(found, "darkroom_nats_connected", connection=role) == 1


async def test_dead_letters_are_counted_past_a_thousand(system: System) -> None:
    await system.start()
    await asyncio.gather(*(system.bus.js.publish(f"darkroom.task._.T{n}.requested", b"not json") for n in range(1200)))

    async def counted() -> float | None:
        found = families(await scrape(system.http, system.url))
        return value(found, "darkroom_dead_letters") if value(found, "darkroom_dead_letters") == 1200 else None

    await eventually(counted, 30, "1200 dead letters in /metrics")


async def test_metrics_answer_while_nats_is_away_without_stale_numbers(system: System) -> None:
    await system.start()
    await system.wait_task((await system.start_task("three"))["id"])
    await system.server.stop()
    try:
        text = await scrape(system.http, system.url)
    finally:
        await system.server.start()
    assert promtool(text) == "", text
    found = families(text)
    assert value(found, "darkroom_nats_connected", connection="api") == 0
    assert found["darkroom_stream_messages"] == {}  # there, without a sample: NATS cannot say now
    assert value(found, "darkroom_dead_letters") == 0


async def test_darkroom_up_in_two_processes_serves_both_in_one_valid_exposition(system: System, tmp_path: Path) -> None:
    """`up`'s worker runs in a second process: `up`'s /metrics still has every family once, the worker's
    series among them, and what both processes count is added up."""
    env = job_types_env(tmp_path, DARKROOM_UP__PROCESSES="2")
    port = free_port()
    up = await start(system, "up", "--port", str(port), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        await until_ready(base, up, "darkroom up")
        async with system.http.post(f"{base}/api/tasks", json={"type": "three"}) as response:
            assert response.status == 202, await response.text()
            task_id = (await response.json())["task"]["id"]

        async def completed() -> bool:
            async with system.http.get(f"{base}/api/tasks/{task_id}") as response:
                return (await response.json()).get("task", {}).get("status") == "completed"

        await eventually(completed, 30, "the task to complete")
        text = await scrape(system.http, base)
        assert promtool(text) == "", text
        found = families(text)
        assert value(found, "darkroom_jobs_completed", "darkroom_jobs_completed_total", type="noop") == 3
        assert value(found, "darkroom_job_duration_seconds", "darkroom_job_duration_seconds_count", type="noop") == 3
        assert value(found, "darkroom_worker_busy_slots", lane="priority") == 0
        for role in ("projector", "orchestrator", "worker", "api"):
            assert value(found, "darkroom_nats_connected", connection=role) == 1
        # What start-up made is left out of collections, so a full one pauses SSE clients less.
        assert value(found, "darkroom_gc_frozen_objects") > 10_000
        # Every stored event was published by one of the two: the counts of both are in the one total.
        assert value(found, "darkroom_events_published", "darkroom_events_published_total") == value(
            found, "darkroom_stream_messages"
        )
    finally:
        up.terminate()
        assert await asyncio.wait_for(up.wait(), 15) == 0


async def test_image_work_waiting_for_the_workers_image_gate_is_a_gauge_by_lane(system: System) -> None:
    await start_shipped(system, processing__workers=1)
    project = await create_project(system, "Gauged")
    status, body = await upload(system, project["folder"], [(f"g{n}.jpg", photo_bytes(SLOW_PHOTO)) for n in range(8)])
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/regenerate", {})
    assert status == 202, body

    async def waiting() -> float | None:
        text = await scrape(system.http, system.url)
        assert promtool(text) == "", text
        return value(families(text), "darkroom_image_work_waiting", lane="normal")

    # Eight photos, two places for them (one image process and one more): the rest wait.
    assert await eventually(waiting, 15, "the regeneration's image work to wait at the gate") >= 1
    await system.wait_task(body["task"]["id"], timeout=30)
    found = families(await scrape(system.http, system.url))
    assert [value(found, "darkroom_image_work_waiting", lane=lane) for lane in ("priority", "normal")] == [0, 0]
