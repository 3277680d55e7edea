"""Project file leases between real processes: one holder at a time, and a holder killed with -9
does not keep a project (and the slots waiting on it) for the lease's whole TTL. A worker keeps a
lease it let go for a moment (its next job on the project takes it without asking the bucket), and
no longer: another process waits at most that moment, and none at all once the worker stops."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from darkroom.kernel.bus import Bus
from darkroom.kernel.lease import LEASE_LINGER_S, LeaseBusy, Leases
from darkroom.kernel.natsd import NatsServer
from darkroom.kernel.provision import LEASE_BUCKET, LEASE_TTL_S, lease_bucket
from tests.conftest import REPO, System, create_project, photo_bytes, start_shipped, upload

HOLDER = """
import asyncio, sys
from darkroom.kernel.bus import Bus
from darkroom.kernel.lease import Leases

async def main():
    bus = await Bus.connect(sys.argv[1], "holder")
    async with Leases(bus, "holder").hold(sys.argv[2], "moving files"):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_lease_whose_holder_was_killed_is_taken_at_once_on_its_host(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, "darkroom-test")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, nats_server.url, "P1", cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"held\n"
        leases = Leases(bus, "waiter")
        with pytest.raises(LeaseBusy):  # while it lives, the project is its own
            async with leases.hold("P1", "a check", timeout=1.0):
                pass
        holder.kill()
        await holder.wait()
        began = time.monotonic()
        async with leases.hold("P1", "a check", timeout=LEASE_TTL_S / 3):
            took = time.monotonic() - began
        assert took < 2.0, f"the dead holder's lease was taken after {took:.1f}s"
        async with leases.hold("P1", "the next check", timeout=1.0):  # released again as usual
            pass
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await bus.close()


async def test_a_lease_is_taken_once_its_bucket_has_a_leader_again(nats_server: NatsServer) -> None:
    # A node that died took the bucket's leader with it: until a replica takes over nothing answers,
    # and a job taking a lease then must wait for it, not fail (it would use up its attempts in seconds).
    bus = await Bus.connect(nats_server.url, "darkroom-test")
    try:
        leases = Leases(bus, "waiter")
        async with leases.hold("P1", "first"):
            pass
        await bus.jsm.delete_stream(f"KV_{LEASE_BUCKET}")  # no stream answers on the bucket's subjects
        kept_alive = asyncio.Event()
        taking = asyncio.ensure_future(_take(leases, "P1", kept_alive.set))
        await asyncio.wait_for(kept_alive.wait(), 10)  # it tried, found no leader and waits on
        assert not taking.done()
        await lease_bucket(bus.js)  # the leader is back
        assert await asyncio.wait_for(taking, 10) == "held"
    finally:
        await bus.close()


async def _take(leases: Leases, project: str, alive) -> str:
    async with leases.hold(project, "a check", alive=alive):
        return "held"


async def _stored(bus: Bus) -> int:
    """Messages the lease bucket has stored so far (takes, refreshes and releases)."""
    return (await bus.jsm.stream_info(f"KV_{LEASE_BUCKET}")).state.last_seq


async def test_uploads_one_per_request_take_the_project_lease_once(system: System) -> None:
    # Each upload's manifest_check and folder_check hold the project's lease. Taken and released per
    # check, as before, that was four stored messages (each a disk flush) and eight round trips a photo.
    runtime = await start_shipped(system)
    project = await create_project(system, "Burst")
    before = await _stored(system.bus)
    for name in ("A1.jpg", "A2.jpg", "A3.jpg", "A4.jpg"):
        status, body = await upload(system, project["folder"], [(name, photo_bytes("cameras/Canon_40D.jpg"))])
        assert status == 201, body
        await system.wait_task(body["task_id"], timeout=30)
    assert await _stored(system.bus) - before <= 2  # one take; its release may have come
    await runtime.stop()  # a stopping worker lets its lease go at once: another process need not wait
    async with Leases(system.bus, "next").hold(project["project_id"], "a check", timeout=0.2):
        pass


async def test_a_lease_kept_for_the_next_job_holds_off_others_only_that_long(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, "darkroom-test")
    try:
        worker = Leases(bus, "worker", linger_s=LEASE_LINGER_S)
        other = Leases(bus, "other")
        async with worker.hold("P1", "a check"):
            pass
        before = await _stored(bus)
        async with worker.hold("P1", "the next check", timeout=0.2):  # its own next job: no take
            pass
        assert await _stored(bus) == before
        with pytest.raises(LeaseBusy):  # kept for a moment, it is still the worker's
            async with other.hold("P1", "a restore", timeout=LEASE_LINGER_S / 5):
                pass
        began = time.monotonic()
        async with other.hold("P1", "a restore", timeout=LEASE_LINGER_S * 4):
            took = time.monotonic() - began
        assert took < LEASE_LINGER_S + 0.5
        taken = await _stored(bus)
        async with worker.hold("P1", "a check", timeout=0.2):  # let go, it is taken from the bucket again
            pass
        assert await _stored(bus) > taken
        await worker.close()  # the lease it keeps goes now, not after the bus has closed
    finally:
        await bus.close()


async def test_two_jobs_of_one_worker_on_one_project_never_hold_its_lease_at_once(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, "darkroom-test")
    try:
        leases = Leases(bus, "worker", linger_s=LEASE_LINGER_S)
        holding: list[str] = []
        overlaps: list[list[str]] = []

        async def job(name: str) -> None:
            async with leases.hold("P1", name, timeout=10):
                holding.append(name)
                if len(holding) > 1:
                    overlaps.append(list(holding))
                await asyncio.sleep(0.1)
                holding.remove(name)

        await asyncio.gather(*(job(f"check {n}") for n in range(4)))
        assert overlaps == []
        await leases.close()  # let go at once
        async with Leases(bus, "other").hold("P1", "a restore", timeout=0.2):
            pass
    finally:
        await bus.close()
