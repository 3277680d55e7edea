"""A slot's pulls from a lane against a real server: a slot that has stopped waiting holds no pull
request, so a job stored afterwards stays in the lane for whichever slot is free."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from darkroom.kernel import subjects
from darkroom.kernel.bus import Bus
from darkroom.kernel.events import JobRequested
from darkroom.kernel.natsd import NatsServer
from darkroom.kernel.provision import provision
from darkroom.kernel.subjects import lane_consumer
from darkroom.worker.pull import LanePull
from tests.conftest import make_config

LANE = lane_consumer("priority")


async def lane_state(bus: Bus) -> tuple[int, int]:
    """Jobs waiting in the lane, and jobs handed to a slot and not yet acknowledged."""
    info = await bus.jsm.consumer_info(subjects.STREAM, LANE)
    return info.num_pending, info.num_ack_pending


async def test_a_slot_that_stopped_waiting_leaves_no_request_behind(nats_server: NatsServer, tmp_path: Path) -> None:
    bus = await Bus.connect(nats_server.url, "pull-test")
    try:
        await provision(bus.js, make_config(tmp_path))
        pull = await LanePull(bus.nc, LANE).start()
        loop = asyncio.get_running_loop()
        for n, wait in enumerate((0.05, 0.0, 0.05, 0.0, 0.05)):  # an idle slot's waits and looks
            loop.call_soon(time.sleep, 0.05)  # a busy event loop: the request reaches the server late
            assert await pull.next(wait) is None
            job = JobRequested(
                task_id=f"t{n}",
                job_id=f"t{n}-0",
                task_type="x",
                job_type="noop",
                step_index=0,
                priority=90,
                lane="priority",
            )
            await bus.publish(job)  # its subject names its lane
            await asyncio.sleep(0.1)  # time enough for a request left behind to take it
            assert await lane_state(bus) == (1, 0)  # in the lane, not handed to a slot that moved on
            msg = await pull.next(0.0)  # a look finds what is there
            assert msg is not None and bus.codec.decode(msg.data) == job
            assert await lane_state(bus) == (0, 1)
            await msg.ack()
        await pull.stop()
    finally:
        await bus.close()
