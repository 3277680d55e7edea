"""SSE keeps CONTRACT §3: a comment line in every quiet interval, a `reset` for any id it cannot
resume from, a 404 for a project that does not exist."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import SSEClient, System, create_project, eventually


async def test_a_commit_for_another_stream_does_not_put_off_the_comment_line(system: System) -> None:
    await system.start()
    await create_project(system, "Watched")
    ping_s = 2.5
    system.api.api_deps.sse_ping_s = ping_s  # the contract's 15 s, scaled down for the test
    async with SSEClient(system.http, f"{system.url}/api/events?project=Watched") as client:
        await asyncio.sleep(0.8 * ping_s)  # the scenario: other work late in the quiet interval, then none
        await create_project(system, "Elsewhere")

        async def commented() -> list[float]:
            return client.comment_times

        await eventually(commented, 3 * ping_s, "a comment line")
        gap = client.comment_times[0] - client.connected_at
        assert gap < 1.4 * ping_s, f"the first comment came {gap:.1f}s after the stream opened"
        assert client.messages == []


async def _first_message(system: System, last_event_id: str) -> SSEClient:
    client = SSEClient(system.http, f"{system.url}/api/events", last_event_id=last_event_id)
    await client.__aenter__()
    await client.wait_for(lambda m: True, what=f"a first message after Last-Event-ID {last_event_id!r}")
    return client


async def test_a_resume_point_ahead_of_the_log_or_not_ours_gets_reset_and_the_stream_goes_on(system: System) -> None:
    await system.start()
    first = await system.start_task("three")
    await system.wait_task(first["id"])
    last = await system.bus.last_seq()
    for last_event_id in (str(last + 1000), f"{last + 1000}.3", "9" * 30, "not-an-id", "-4"):
        client = await _first_message(system, last_event_id)
        try:
            assert client.messages[0][1] == "reset", (last_event_id, client.messages)
            task = await system.start_task("three")
            await client.wait_for(
                lambda m: m[1] == "task_update" and m[2]["id"] == task["id"] and m[2]["status"] == "completed",
                what=f"live updates after {last_event_id!r}",
            )
            assert [m[1] for m in client.messages].count("reset") == 1
        finally:
            await client.close()


async def test_a_resume_point_within_the_log_resumes_without_reset(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    client = await _first_message(system, "1")
    try:
        assert client.messages[0][1] != "reset"
        await client.wait_for(
            lambda m: m[1] == "task_update" and m[2]["id"] == task["id"] and m[2]["status"] == "completed",
            what="the task's updates again",
        )
    finally:
        await client.close()


async def test_an_unknown_project_is_a_404(system: System) -> None:
    await system.start()
    await create_project(system, "Known")
    status, body, _ = await asyncio.wait_for(system.request("GET", "/api/events?project=Nope"), 10)
    assert status == 404 and body == {"error": "project 'Nope' not found"}
    started = time.monotonic()
    async with system.http.get(f"{system.url}/api/events?project=Known") as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        assert time.monotonic() - started < 5
