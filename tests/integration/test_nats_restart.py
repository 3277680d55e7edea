"""NATS comes and goes: a nats-server restarted on the same port and store, under running services."""

from __future__ import annotations

import asyncio
import time

import pytest

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


@pytest.mark.parametrize("what", ["publish", "request"])
async def test_what_was_lost_with_its_connection_fails_soon_after_the_reconnect(nats_server, what) -> None:
    import nats.errors

    from darkroom.kernel.bus import Bus
    from darkroom.kernel.messages import Outgoing
    from darkroom.kernel.provision import provision
    from darkroom.kernel.publish import PublishError
    from darkroom.kernel.subjects import STREAM_INFO
    from tests.browser.proxy import Proxy
    from tests.conftest import make_config

    proxy = await Proxy(nats_server.port).start()
    bus = await Bus.connect(f"nats://127.0.0.1:{proxy.port}", "darkroom-test")
    try:
        await provision(bus.js, make_config(nats_server.store_dir.parent / "data"))
        # The server gets the message's first bytes and no more; then the connection goes, as when
        # a server is killed with it in flight: no answer will ever come for it.
        if what == "publish":  # an event, through the bus's pipelined acknowledgements
            proxy.hold_after(b"PUB darkroom.lane.lost.paused", 1, 0)
            lost = await bus.acks.publish(Outgoing("darkroom.lane.lost.paused", b"{}"))
        else:  # a request through nats-py, as reading the log's end and the JetStream API make
            proxy.hold_after(f"PUB {STREAM_INFO}".encode(), 1, 0)
            lost = asyncio.ensure_future(bus.last_seq())
        await asyncio.wait_for(proxy.held.wait(), 5)
        proxy.cut()
        proxy.restore()
        cut = time.monotonic()
        with pytest.raises((PublishError, nats.errors.TimeoutError)):
            await asyncio.wait_for(lost, 15)
        waited = time.monotonic() - cut
        assert waited < 3.0, f"its sender heard after {waited:.1f}s"  # not its timeout's 5 or 10 s
        assert await bus.send(Outgoing("darkroom.lane.kept.paused", b"{}")) > 0  # the connection is back
        assert await bus.last_seq() > 0
    finally:
        await bus.close()
        await proxy.close()
