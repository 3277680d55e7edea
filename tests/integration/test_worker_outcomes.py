"""A worker acknowledges a job only once its outcome is stored, stopping included. The log is made to
refuse every new message (full, new ones discarded) while jobs already in it are handed out: an
outcome then cannot be stored until it takes them again."""

from __future__ import annotations

import asyncio

from nats.js import api

from darkroom.kernel.provision import stream_config
from darkroom.kernel.subjects import STREAM, lane_consumer
from darkroom.worker.service import PUBLISH_LOOP
from tests.conftest import System, eventually

LANE = lane_consumer("priority")
ONE_SLOT = {"pipeline__max_parallel_jobs": 1, "pipeline__priority_lane_slots": 1}


async def _lane(system: System) -> tuple[int, int]:
    """Jobs waiting in the priority lane, and jobs handed out and not acknowledged."""
    assert system.bus is not None
    info = await system.bus.jsm.consumer_info(STREAM, LANE)
    return info.num_pending, info.num_ack_pending


async def _storing(system: System, refuse: bool) -> None:
    """The log refuses every new message from now on, or takes them again."""
    assert system.bus is not None
    config = stream_config(system.runtimes[0].config)
    if refuse:
        config.max_msgs = (await system.bus.jsm.stream_info(STREAM)).state.messages
        config.discard = api.DiscardPolicy.NEW
    await system.bus.jsm.update_stream(config)


async def _outcomes(system: System) -> list[str]:
    return [event["job_id"] for _seq, _subject, event in await system.log("darkroom.job.*.*.completed")]


async def _queued(system: System, count: int, **settings) -> list[dict]:
    """`count` one-step tasks whose jobs wait in the priority lane, no worker running yet."""
    await system.start(roles=("projector", "orchestrator", "api"), **settings)
    tasks = [await system.start_task("quick_priority") for _ in range(count)]
    await eventually(lambda: _in_lane(system, count), 10, f"{count} jobs in the lane")
    return tasks


async def _in_lane(system: System, count: int) -> bool:
    return await _lane(system) == (count, 0)


async def test_a_job_whose_outcome_cannot_be_stored_is_not_acknowledged(system: System) -> None:
    ack_wait = {"pipeline__ack_wait_s": 1.0}
    (task,) = await _queued(system, 1, **ack_wait)
    await _storing(system, refuse=True)
    await system.start(roles=("worker",), **ONE_SLOT, **ack_wait)
    assert system.bus is not None

    async def handed_out_again() -> bool:
        return (await system.bus.jsm.consumer_info(STREAM, LANE)).num_redelivered > 0

    # Not acknowledged while its outcome could not be stored: it comes again after the ack wait.
    await eventually(handed_out_again, 15, "the job to be handed out again")
    assert await _outcomes(system) == []
    await _storing(system, refuse=False)
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"
    await eventually(lambda: _in_lane(system, 0), 10, "the job to be acknowledged")
    assert await _outcomes(system) == [f"{task['id']}-0"]  # stored once, whichever attempt stored it


async def test_a_stopping_worker_stores_its_last_outcome_and_acknowledges_its_job_before_it_ends(
    system: System,
) -> None:
    ack_wait = {"pipeline__ack_wait_s": 30.0}
    (task,) = await _queued(system, 1, **ack_wait)
    await _storing(system, refuse=True)
    runtime = await system.start(roles=("worker",), **ONE_SLOT, **ack_wait)
    assert runtime.worker is not None

    async def outcome_refused() -> bool:
        return PUBLISH_LOOP in runtime.loops.down

    await eventually(outcome_refused, 10, "the job's outcome to be refused")
    stopping = asyncio.ensure_future(runtime.worker.stop(grace_s=20))
    # Its slot stops pulling at once (its wait is 0.1 s), but the worker does not end with the outcome unstored.
    done, _ = await asyncio.wait([stopping], timeout=1.0)
    assert not done
    await _storing(system, refuse=False)
    await asyncio.wait_for(stopping, 20)
    await eventually(lambda: _in_lane(system, 0), 10, "the job to be acknowledged")  # sent before it ended
    assert await _outcomes(system) == [f"{task['id']}-0"]
