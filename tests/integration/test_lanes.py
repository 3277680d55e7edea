"""Pausing a lane: no worker process takes a new job from it (running ones finish), it stays paused
across restarts, and GET /api/lanes, /metrics, SSE, `darkroom lanes` and `darkroom audit` show it."""

from __future__ import annotations

import asyncio
import time

import nats
from nats.aio.msg import Msg

from darkroom.kernel.subjects import lane_consumer, next_messages
from tests.conftest import SSEClient, System, eventually, run_cli


async def _lanes(system: System) -> dict[str, dict]:
    status, body, _ = await system.request("GET", "/api/lanes")
    assert status == 200, body
    return {lane["lane"]: lane for lane in body["lanes"]}


async def _taken(system: System, task_ids: list[str]) -> list[str]:
    """The jobs of these tasks a worker stored anything of (a job.started, its progress, an outcome)."""
    return [e["job_id"] for t in task_ids for _, _, e in await system.log(f"darkroom.job._.{t}.*")]


async def _worker_is_taking_work(system: System) -> None:
    """A priority task runs from end to end: every worker slot has been round the loop meanwhile,
    so what they left alone until now they leave alone."""
    task = await system.start_task("quick_priority")
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"


async def _metric(system: System, line_start: str) -> str:
    async with system.http.get(f"{system.url}/metrics") as response:
        return next(line for line in (await response.text()).splitlines() if line.startswith(line_start))


async def test_a_paused_lane_is_left_alone_by_every_worker_until_resumed_also_after_a_restart(system: System) -> None:
    await system.start(pipeline__max_parallel_jobs=2, pipeline__priority_lane_slots=1)
    await system.start(roles=("worker",), pipeline__max_parallel_jobs=3, pipeline__priority_lane_slots=0)
    lanes = await _lanes(system)
    assert list(lanes) == ["priority", "normal"]
    assert lanes["normal"] == {
        "lane": "normal",
        "paused": False,
        "depth": 0,
        "in_flight": 0,
        "busy_slots": 0,
        "updated_at": None,
        "jobs": {},
    }

    async with SSEClient(system.http, f"{system.url}/api/events") as live:
        status, body, headers = await system.request("POST", "/api/lanes/normal/pause")
        assert status == 200, body
        assert body["lane"]["lane"] == "normal" and body["lane"]["paused"] is True
        pause_seq = int(headers["X-Darkroom-Seq"])
        _, _, message = await live.wait_for(lambda m: m[1] == "lane_update", what="lane_update")
        assert message["lane"] == "normal" and message["paused"] is True
    ((seq, subject, event),) = await system.log("darkroom.lane.>")
    assert (seq, subject, event["type"], event["lane"], event["source"]) == (
        pause_seq,
        "darkroom.lane.normal.paused",
        "lane.paused",
        "normal",
        "user",
    )

    # Pausing it again stores nothing; its jobs wait while priority work goes on.
    status, body, headers = await system.request("POST", "/api/lanes/normal/pause")
    assert status == 200 and int(headers["X-Darkroom-Seq"]) == pause_seq
    waiting = [(await system.start_task("quick_normal"))["id"] for _ in range(5)]
    await _worker_is_taking_work(system)
    assert await _taken(system, waiting) == []
    lanes = await _lanes(system)
    assert lanes["normal"]["paused"] is True and lanes["normal"]["jobs"] == {
        "noop": {"queued": 5, "running": 0, "retrying": 0, "failed": 0}
    }
    assert lanes["normal"]["depth"] + lanes["normal"]["in_flight"] == 5 and lanes["normal"]["busy_slots"] == 0
    assert await _metric(system, 'darkroom_lane_paused{lane="normal"}') == 'darkroom_lane_paused{lane="normal"} 1.0'

    # Every process starts again: the lane is still paused.
    for runtime in list(system.runtimes):
        await runtime.stop()
    system.runtimes.clear()
    await system.start()
    await system.start(roles=("worker",))
    await _worker_is_taking_work(system)
    assert await _taken(system, waiting) == []
    assert (await _lanes(system))["normal"]["paused"] is True

    status, body, _ = await system.request("POST", "/api/lanes/normal/resume")
    assert status == 200 and body["lane"]["paused"] is False, body
    for task_id in waiting:
        assert (await system.wait_task(task_id))["task"]["status"] == "completed"
    lanes = await _lanes(system)
    assert lanes["normal"]["paused"] is False and lanes["normal"]["jobs"] == {}
    assert [e["type"] for _, _, e in await system.log("darkroom.lane.>")] == ["lane.paused", "lane.resumed"]


async def test_a_job_running_when_its_lane_is_paused_finishes_and_the_next_waits(system: System) -> None:
    await system.start()
    running = await system.start_task("long_normal", items=["1.5"])
    await system.wait_job(running["id"], 0, "running")
    status, body, _ = await system.request("POST", "/api/lanes/normal/pause")
    assert status == 200, body
    after = await system.start_task("long_normal", items=["0.1"])
    assert (await system.wait_task(running["id"]))["task"]["status"] == "completed"
    await _worker_is_taking_work(system)
    assert await _taken(system, [after["id"]]) == []
    await system.request("POST", "/api/lanes/normal/resume")
    await system.wait_task(after["id"])


async def test_a_job_stored_just_after_the_pause_is_not_run_though_a_pull_made_before_asked_for_it(
    system: System,
) -> None:
    # A slot of priority work only: it always has a pull of a second out on its lane.
    await system.start(pipeline__max_parallel_jobs=1, pipeline__priority_lane_slots=1)
    await system.start(roles=("worker",), pipeline__max_parallel_jobs=1, pipeline__priority_lane_slots=0)
    status, body, _ = await system.request("POST", "/api/lanes/priority/pause")
    assert status == 200, body
    waiting = [t["id"] for t in await asyncio.gather(*(system.start_task("quick_priority") for _ in range(3)))]
    for _ in range(3):  # normal work runs meanwhile, and every pull made before the pause expires
        clock = await system.start_task("quick_normal")
        await system.wait_task(clock["id"])
    assert await _taken(system, waiting) == []
    await system.request("POST", "/api/lanes/priority/resume")
    for task_id in waiting:
        await system.wait_task(task_id)


async def test_darkroom_lanes_pauses_resumes_and_shows_the_counts_and_audit_tells_who(system: System) -> None:
    await system.start()
    code, out, err = await run_cli(system, "lanes", "pause", "priority")
    assert code == 0, err
    assert out.splitlines()[0].startswith("lane priority paused; seq ")
    waiting = await system.start_task("quick_priority")
    await system.wait_job(waiting["id"], 0, "queued")
    code, out, err = await run_cli(system, "lanes")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["LANE", "STATE", "DEPTH", "IN_FLIGHT", "BUSY_SLOTS"]
    assert lines[1].split()[:2] == ["priority", "paused"] and lines[2].split()[:2] == ["normal", "running"]
    assert lines[4].split() == ["LANE", "JOB_TYPE", "QUEUED", "RUNNING", "RETRYING", "FAILED"]
    assert lines[5].split() == ["priority", "noop", "1", "0", "0", "0"]

    code, out, err = await run_cli(system, "lanes", "resume", "priority")
    assert code == 0 and out.startswith("lane priority resumed; seq "), err
    await system.wait_task(waiting["id"])
    code, out, err = await run_cli(system, "audit", "lane", "priority")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(r[2], r[3], " ".join(r[6:])) for r in rows] == [
        ("lane.paused", "user", "lane priority paused"),
        ("lane.resumed", "user", "lane priority resumed"),
    ]

    code, out, err = await run_cli(system, "lanes", "pause", "fast")
    assert code == 1 and err.strip() == "darkroom: no lane 'fast'; the lanes are priority, normal"
    status, body, _ = await system.request("POST", "/api/lanes/fast/pause")
    assert (status, body) == (404, {"error": "no lane 'fast'; the lanes are priority, normal"})
    assert [e["type"] for _, _, e in await system.log("darkroom.lane.>")] == ["lane.paused", "lane.resumed"]


async def test_while_priority_slots_are_idle_the_normal_lane_is_asked_once_a_second_and_its_work_taken_at_once(
    system: System,
) -> None:
    # One normal-first slot beside 15 priority-only ones, as the default slots are.
    await system.start(pipeline__max_parallel_jobs=16, pipeline__priority_lane_slots=15)
    await _worker_is_taking_work(system)  # the worker is not at rest: work flows
    nc = await nats.connect(system.server.url)
    seen: list[tuple[float, str]] = []  # one connection: in the order the server sent them

    async def note(msg: Msg) -> None:
        seen.append((time.monotonic(), msg.subject))

    try:
        for subject in (
            next_messages(lane_consumer("normal")),
            "darkroom.job.*.*.started",
            "darkroom.job.*.*.completed",
        ):
            await nc.subscribe(subject, cb=note)
        await nc.flush()
        running = await system.start_task("long_priority", ["2"])

        async def started() -> bool:
            return any(s.endswith(".started") for _, s in seen)

        await eventually(started, what="job.started")
        quick = await system.start_task("quick_normal")
        assert (await system.wait_task(quick["id"]))["task"]["status"] == "completed"
        assert not any(running["id"] in s and s.endswith(".completed") for _, s in seen)  # taken at once
        assert (await system.wait_task(running["id"]))["task"]["status"] == "completed"
        await nc.flush()
    finally:
        await nc.close()
    began = next(t for t, s in seen if running["id"] in s and s.endswith(".started"))
    ended = next(t for t, s in seen if running["id"] in s and s.endswith(".completed"))
    asks = [t for t, s in seen if s.startswith("$JS.API") and began <= t <= ended]
    # Ten times a second before: the slot's short wait is for when every priority-only slot is busy.
    assert 1 <= len(asks) <= 1 + (ended - began), (len(asks), ended - began)
