"""SSE clients see every change, resume without gaps; replay rebuilds the read model exactly."""

from __future__ import annotations

import asyncio
import sqlite3

from darkroom.kernel.clock import parse_iso
from darkroom.projector.store import read_model_path
from darkroom.worker.service import STARTED_AFTER_S
from tests.conftest import SSEClient, System, cli_env, darkroom_cli


async def _mixed_run(system: System) -> list[dict]:
    tasks = [
        await system.start_task("three"),
        await system.start_task("fails_second"),
        await system.start_task("slow_items", items=[f"i{n}" for n in range(30)]),
        await system.start_task("sweep"),
    ]
    await system.wait_job(tasks[2]["id"], 0, "running")
    await system.request("POST", f"/api/tasks/{tasks[2]['id']}/cancel")
    for task in tasks:
        await system.wait_task(task["id"])
    return tasks


async def _outbox(system: System, maintenance: bool) -> list[tuple[str, str]]:
    with sqlite3.connect(read_model_path(system.data_dir)) as db:
        sql = "SELECT seq, k, event FROM outbox" + ("" if maintenance else " WHERE maintenance = 0")
        rows = db.execute(sql + " ORDER BY seq, k").fetchall()
    return [(str(s) if k == 0 else f"{s}.{k}", e) for s, k, e in rows]


async def test_sse_clients_see_every_task_and_job_update_in_order(system: System) -> None:
    await system.start()
    url = system.url + "/api/events"
    async with SSEClient(system.http, url) as client, SSEClient(system.http, url + "?show_maintenance=true") as every:
        tasks = await _mixed_run(system)
        last = await system.bus.last_seq()
        await system.api.read.wait_for(last, 5)
        await every.wait_for(
            lambda m: m[2].get("id") == tasks[3]["id"] and m[2]["status"] == "completed",
            what="the maintenance task's completion",
        )
        await client.wait_for(lambda m: m[2].get("id") == tasks[2]["id"] and m[2]["status"] == "canceled")
    # Exactly what the projector recorded, in order, nothing twice; maintenance only when asked for.
    assert [(i, e) for i, e, _ in client.messages] == await _outbox(system, maintenance=False)
    assert [(i, e) for i, e, _ in every.messages] == await _outbox(system, maintenance=True)
    assert all(d.get("task_id") != tasks[3]["id"] and d.get("id") != tasks[3]["id"] for _, _, d in client.messages)
    for _, event, data in client.messages:
        if event == "job_update":
            assert data["source"] == "user" and data["task_id"] and data["task_type"]
    statuses = {}
    for _, event, data in client.messages:
        if event == "task_update":
            statuses.setdefault(data["id"], []).append(data["status"])
    assert statuses[tasks[0]["id"]][0] == "queued" and statuses[tasks[0]["id"]][-1] == "completed"
    assert statuses[tasks[1]["id"]][-1] == "failed"
    assert statuses[tasks[2]["id"]][-1] == "canceled"

    def job_updates(job_id: str) -> list[dict]:
        return [d for _, e, d in client.messages if e == "job_update" and d["id"] == job_id]

    # A job done within 250 ms goes from queued to completed (no job.started, CONTRACT §7.1)...
    quick = job_updates(f"{tasks[0]['id']}-1")
    ran_s = (parse_iso(quick[-1]["finished_at"]) - parse_iso(quick[-1]["started_at"])).total_seconds()
    assert [d["status"] for d in quick] == (
        ["queued", "completed"] if ran_s < STARTED_AFTER_S else ["queued", "running", "completed"]
    )
    # ...a longer one shows it running, with its progress.
    slow = [(d["status"], d["progress_done"]) for d in job_updates(f"{tasks[2]['id']}-0")]
    assert slow[:2] == [("queued", 0), ("running", 0)] and slow[-1][0] == "canceled"
    assert [p for status, p in slow if status == "running"][-1] > 0


async def test_a_client_that_reconnects_with_last_event_id_misses_nothing(system: System) -> None:
    await system.start()
    url = system.url + "/api/events"
    async with SSEClient(system.http, url) as steady:
        dropping = SSEClient(system.http, url)
        await dropping.__aenter__()
        first = await system.start_task("three")
        await dropping.wait_for(lambda m: m[1] == "job_update")
        await dropping.close()
        seen = list(dropping.messages)
        # The whole of a task happens while the client is away.
        await system.wait_task(first["id"])
        second = await system.start_task("sleep_then_two", items=["0.2"])
        await system.wait_task(second["id"])
        async with SSEClient(system.http, url, last_event_id=seen[-1][0]) as resumed:
            await resumed.wait_for(lambda m: m[2].get("id") == second["id"] and m[2]["status"] == "completed")
        await steady.wait_for(lambda m: m[2].get("id") == second["id"] and m[2]["status"] == "completed")
    ids = [m[0] for m in seen + resumed.messages]
    assert ids == [m[0] for m in steady.messages]
    assert len(set(ids)) == len(ids)


async def test_a_resume_point_that_was_pruned_gets_reset(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    with sqlite3.connect(read_model_path(system.data_dir)) as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('outbox_pruned_through', 5)")
    async with SSEClient(system.http, system.url + "/api/events", last_event_id="2") as client:
        await client.wait_for(lambda m: m[1] == "reset", what="a reset")
        assert client.messages[0][1] == "reset"


async def _replay(system: System, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("replay", "--nats", system.server.url, "--data", str(system.data_dir), *args),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode, out.decode()


async def test_replay_verify_passes_after_a_mixed_run_and_catches_a_tampered_row(system: System) -> None:
    await system.start()
    tasks = await _mixed_run(system)
    await system.api.read.wait_for(await system.bus.last_seq(), 5)
    code, out = await _replay(system, "--verify")
    assert code == 0, out
    assert "equals the live one" in out and "events/s" in out
    system.verify_on_close = False  # the live model is tampered with on purpose below
    with sqlite3.connect(read_model_path(system.data_dir)) as db:
        db.execute("UPDATE tasks SET status = 'completed' WHERE id = ?", (tasks[1]["id"],))
    code, out = await _replay(system, "--verify")
    assert code == 1
    assert f"tasks id={tasks[1]['id']}" in out and "'failed'" in out


async def test_replay_into_a_file_rebuilds_the_same_rows(system: System, tmp_path) -> None:
    await system.start()
    await _mixed_run(system)
    target = tmp_path / "rebuilt.sqlite"
    code, out = await _replay(system, "--into", str(target))
    assert code == 0, out
    with sqlite3.connect(target) as rebuilt, sqlite3.connect(read_model_path(system.data_dir)) as live:
        for table in ("tasks", "jobs"):
            assert (
                rebuilt.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
                == live.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            )
    code, out = await _replay(system, "--into", str(target))
    assert code == 2 and "already exists" in out
