"""A steady flow of events reaches the read model in paced batches, not a transaction per event: the
process the projector shares with the API and the orchestrator keeps its loop for their work."""

from __future__ import annotations

import asyncio
import time

from darkroom.kernel.events import ProjectCreated
from darkroom.projector.service import PACE_S
from tests.conftest import System, eventually

EVENTS = 100
APART_S = 0.002  # a task's events come about this far apart when it runs alone


async def test_a_steady_flow_of_events_is_applied_in_paced_batches_and_none_is_left_behind(system: System) -> None:
    runtime = await system.start(roles=("projector", "api"))
    assert runtime.projector is not None and system.bus is not None
    engine = runtime.projector.projector
    batches: list[int] = []
    told = engine.on_applied
    assert told is not None

    def counted(seq: int, outbox: list) -> None:
        batches.append(seq)
        told(seq, outbox)

    engine.on_applied = counted
    began = time.monotonic()
    for n in range(EVENTS):
        last = await system.bus.publish(ProjectCreated(project_id=f"P{n:03d}", name=f"Flow {n}", folder=f"flow-{n}"))
        await asyncio.sleep(APART_S)
    flowed = time.monotonic() - began
    await eventually(lambda: _reached(engine, last), 10, f"the projector to apply {last}")
    # One batch per pace while they came (and the one that caught the last), where one per event was made before.
    assert len(batches) <= flowed / PACE_S + 2, (len(batches), flowed)
    status, body, _ = await system.request("GET", "/api/projects")
    assert status == 200
    assert {p["folder"] for p in body["projects"]} >= {f"flow-{n}" for n in range(EVENTS)}


async def _reached(engine, seq: int) -> bool:
    return engine.checkpoint >= seq
