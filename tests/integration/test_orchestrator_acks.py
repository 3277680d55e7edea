"""The orchestrator's acknowledgements against a real server: each handled message is acknowledged
once its decision is stored, in the write that carries the next decision (or soon after, when none
comes), so a task costs the server and the orchestrator one write per decision, not two."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nats.aio.msg import Msg

from darkroom.kernel import subjects
from darkroom.kernel.bus import Bus
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.events import JobCompleted, JobRequested, TaskCompleted, TaskRequested
from darkroom.kernel.natsd import NatsServer
from darkroom.kernel.provision import provision
from darkroom.orchestrator.service import Orchestrator
from tests.conftest import eventually, make_config

STEPS = 3


def requested(task_id: str) -> TaskRequested:
    step = load_definitions()["upload_postprocess"].steps[0]
    return TaskRequested(
        task_id=task_id, source="user", task_type="bench", label="Three steps", user_relevant=True, steps=[step] * STEPS
    )


async def test_each_decision_takes_one_write_and_every_message_is_acknowledged(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    client = await Bus.connect(nats_server.url, "acks-test")
    bus = await Bus.connect(nats_server.url, "darkroom-orchestrator")
    orchestrator = Orchestrator(bus, threshold=90)
    try:
        await provision(client.js, make_config(tmp_path))
        await orchestrator.start()
        writes = 0
        transport = bus.nc._transport
        write = transport.writelines

        def counted(payload: list[bytes]) -> None:  # the writes that carry messages
            nonlocal writes
            writes += any(bytes(p).startswith((b"PUB ", b"HPUB ")) for p in payload)
            write(payload)

        transport.writelines = counted  # counts what the orchestrator's connection writes, writes it all the same
        completed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def work(msg: Msg) -> None:  # the worker's part: every job ends at once
            job = client.codec.decode(msg.data)
            assert isinstance(job, JobRequested)
            fields = {f: getattr(job, f) for f in ("task_id", "job_id", "task_type", "job_type", "step_index")}
            await client.publish(JobCompleted(**fields, attempt=1, started_at=job.at, worker="test"))

        async def done(msg: Msg) -> None:
            if isinstance(client.codec.decode(msg.data), TaskCompleted) and not completed.done():
                completed.set_result(None)

        await client.nc.subscribe(subjects.REQUESTS[0], cb=work)
        await client.nc.subscribe(subjects.task_subject(None, "T1", "completed"), cb=done)
        await client.nc.flush()
        await client.publish(requested("T1"))
        await asyncio.wait_for(completed, 10)
        decisions = STEPS + 1  # a job.requested per step, then task.completed

        async def all_acknowledged() -> bool:
            info = await client.jsm.consumer_info(subjects.STREAM, "orchestrator")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(all_acknowledged, 5, "every handled message acknowledged")
        # One write per decision, its predecessor's acknowledgement in it; the last one's alone.
        assert writes <= decisions + 1, writes
    finally:
        await orchestrator.stop()
        await bus.close()
        await client.close()
