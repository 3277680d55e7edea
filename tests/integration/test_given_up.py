"""A task whose decision was given up after conflicting publishes is taken up again, without a restart,
and still advances each step once (CONTRACT §7.1, issue 6: no silent stall)."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from darkroom.kernel.bus import Bus
from darkroom.kernel.events import TaskStarted
from darkroom.kernel.metrics import Metrics, new_registry
from darkroom.kernel.provision import ORCHESTRATOR_FILTERS, orchestrator_config
from darkroom.kernel.subjects import lane_consumer
from darkroom.kernel.vocabulary import LANES
from darkroom.orchestrator.service import Orchestrator
from tests.conftest import System

THRESHOLD = 90


async def _requests_per_step(system: System, task_id: str) -> Counter:
    stored = await system.log(f"darkroom.job._.{task_id}.requested.>")
    return Counter(e["step_index"] for _, _, e in stored if e["type"] == "job.requested")


async def test_a_task_given_up_after_conflicts_is_decided_again_from_its_history(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="darkroom.orchestrator")
    await system.start(roles=("projector", "worker", "api"))
    task = await system.start_task("three")
    task_id = task["id"]
    # A competing writer (an orchestrator of before CONTRACT §7.1) stores task.started, which this
    # orchestrator does not consume: its first decision, taken without reading the log, conflicts.
    started = TaskStarted(project_id=None, task_id=task_id, source="user")
    await system.bus.publish(started, subject=f"darkroom.task._.{task_id}.started")
    bus = await Bus.connect(system.server.url, "orchestrator-under-test")
    orchestrator = Orchestrator(bus, THRESHOLD, max_conflicts=1)  # one conflict is enough to give up
    metrics = Metrics(new_registry())
    metrics.gathered(orchestrator.families)
    try:
        await orchestrator.start()
        view = await system.wait_task(task_id, timeout=30)
        exposition = (await metrics.exposition()).decode()
    finally:
        await orchestrator.stop()
        await bus.close()
    assert view["task"]["status"] == "completed", view
    assert await _requests_per_step(system, task_id) == {0: 1, 1: 1, 2: 1}  # no step advanced twice
    assert len(await system.log(f"darkroom.task._.{task_id}.completed")) == 1
    # What an operator sees: the give-up and its recovery in the log, and in the metrics.
    said = [r.getMessage() for r in caplog.records if task_id in r.getMessage()]
    assert any("gave up" in m and "looking again" in m for m in said), said
    assert any("decided again" in m for m in said), said
    assert "darkroom_orchestrator_decisions_given_up_total 1.0" in exposition, exposition
    assert "darkroom_orchestrator_tasks_given_up 0.0" in exposition, exposition


async def test_a_readable_stranger_on_a_task_requests_subject_does_not_stall_its_next_step(system: System) -> None:
    await system.start(roles=("projector", "orchestrator", "api"))
    task = await system.start_task("three")
    task_id = task["id"]
    await system.wait_job(task_id, 0, "queued")
    # Stored after step 0's request, where only requests belong: each look at the newest request since
    # saw an event that is not one, and every decision on step 1 conflicted.
    stranger = TaskStarted(project_id=None, task_id=task_id, source="user")
    await system.bus.publish(stranger, subject=f"darkroom.job._.{task_id}.requested.normal.noop")
    await system.start(roles=("worker",))
    view = await system.wait_task(task_id, timeout=30)
    assert view["task"]["status"] == "completed", view
    assert await _requests_per_step(system, task_id) == {0: 1, 1: 1, 2: 1}


async def test_consumers_that_dropped_messages_after_some_deliveries_deliver_them_for_ever(
    system: System,
) -> None:
    # What the previous Darkroom made: a message whose handling failed 20 times was dropped, and its
    # task waited for ever (a job's after max_attempts + 2). Now each comes again, with backoff.
    await system.start(roles=("projector", "worker", "api"))
    old = orchestrator_config("orchestrator")
    old.max_deliver = 20
    old.deliver_subject = "_old.orchestrator"
    await system.bus.jsm.add_consumer("DARKROOM", old)
    await system.start(roles=("orchestrator",))
    info = await system.bus.jsm.consumer_info("DARKROOM", "orchestrator")
    assert info.config.max_deliver == -1 and info.config.filter_subjects == ORCHESTRATOR_FILTERS
    for lane in LANES:  # a job is failed by its worker past max_attempts, never dropped before
        assert (await system.bus.jsm.consumer_info("DARKROOM", lane_consumer(lane))).config.max_deliver == -1
    task = await system.start_task("three")
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"
