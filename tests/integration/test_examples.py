"""The README's tour works: the example plugin and definitions run a task end to end."""

from __future__ import annotations

import asyncio
import json
import sys

from darkroom.kernel.definitions import load_definitions
from darkroom.worker.handlers import load_job_types
from tests.conftest import REPO, System


async def test_the_example_plugin_runs_the_hello_task(system: System) -> None:
    await system.start(
        job_types=load_job_types(["examples.hello_jobs"]),
        definitions=load_definitions(REPO / "examples" / "hello_definitions.json"),
    )
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "hello", "items": ["a", "b"]})
    assert status == 202
    view = await system.wait_task(body["task"]["id"])
    assert view["task"]["status"] == "completed"
    assert [(j["lane"], j["progress_done"], j["progress_total"]) for j in view["jobs"]] == [
        ("priority", 2, 2),
        ("normal", 0, 0),
    ]
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "nope"})
    assert body["error"] == (
        "unknown task type 'nope'; valid types: change_commit, hello, maintenance, upload_postprocess"
    )


async def test_the_follow_log_example_resumes_from_a_sequence(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    task_events = await system.log("darkroom.task.>")  # task.requested, task.completed: resumed at the second
    second = task_events[1][0]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / "follow_log.py"),
        system.server.url,
        "--subject",
        "darkroom.task.>",
        "--from-seq",
        str(second),
        "--limit",
        "1",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [(e["seq"], e["type"]) for e in lines] == [(s, e["type"]) for s, _, e in task_events[1:2]]
    assert all(e["task_id"] == task["id"] for e in lines)
