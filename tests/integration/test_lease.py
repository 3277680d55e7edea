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
from darkroom.kernel.provision import LEASE_TTL_S
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
