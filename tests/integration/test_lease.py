"""Project file leases between real processes: one holder at a time, and a holder killed with -9
does not keep a project (and the slots waiting on it) for the lease's whole TTL."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from darkroom.kernel.bus import Bus
from darkroom.kernel.lease import LeaseBusy, Leases
from darkroom.kernel.natsd import NatsServer
from darkroom.kernel.provision import LEASE_BUCKET, LEASE_TTL_S, lease_bucket
from tests.conftest import REPO

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
