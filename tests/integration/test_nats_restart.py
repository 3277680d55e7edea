"""NATS comes and goes: a nats-server restarted on the same port and store, under running services."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import System, eventually

OUTAGE_S = 4.0


async def _status(system: System, path: str) -> int:
    try:
        status, _, _ = await system.request("GET", path)
    except Exception:  # the api itself not answering counts as not ready
        return 0
    return status


async def _restart_server(system: System) -> float:
    """Stops the server, waits until the api says it is not ready, starts it again on the same port
    and store; returns when it answered (time.monotonic())."""
    await system.server.stop()
    await eventually(lambda: _is(system, "/readyz", 503), 10, "/readyz to say 503 while NATS is away")
    await system.server.start()
    return time.monotonic()


async def _is(system: System, path: str, status: int) -> bool:
    return await _status(system, path) == status


async def test_work_resumes_within_3s_of_a_restarted_nats_server(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    resumed = []
    for _ in range(2):
        answered = await _restart_server(system)

        async def accepted():
            status, body, headers = await system.request("POST", "/api/tasks", {"type": "three"})
            return body["task"] if status == 202 else None

        task = await eventually(accepted, 10, "the api to take a task again")
        view = await system.wait_task(task["id"], timeout=10)
        assert view["task"]["status"] == "completed"
        resumed.append(time.monotonic() - answered)
        await eventually(lambda: _is(system, "/readyz", 200), 5, "/readyz to say 200 again")
    print(f"work resumed {', '.join(f'{s:.2f}' for s in resumed)} s after nats-server answered again")
    assert max(resumed) < 3.0, resumed


async def test_a_slot_whose_outcome_could_not_be_stored_takes_jobs_again(system: System, monkeypatch) -> None:
    from darkroom.kernel import publish

    monkeypatch.setattr(publish, "ACK_TIMEOUT_S", 1.0)  # what a fail-over costs a publish, sooner
    await system.start(pipeline__max_parallel_jobs=1, pipeline__priority_lane_slots=1)  # one slot
    first = await system.start_task("long_priority", items=["1.5"])
    await system.wait_job(first["id"], 0, "running")
    await system.server.stop()
    await asyncio.sleep(OUTAGE_S)  # the job ends meanwhile, and the publish of its outcome fails
    await system.server.start()

    async def accepted():
        status, body, _ = await system.request("POST", "/api/tasks", {"type": "quick_priority"})
        return body["task"] if status == 202 else None

    tasks = [await eventually(accepted, 10, "the api to take a task again") for _ in range(10)]
    for task in [first, *tasks]:
        assert (await system.wait_task(task["id"], timeout=15))["task"]["status"] == "completed"
