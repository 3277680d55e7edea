"""Never twice, never lost: duplicates, killed orchestrators and workers, two orchestrators, lanes."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections import Counter

import pytest

from darkroom.kernel.bus import Bus
from darkroom.kernel.clock import parse_iso
from darkroom.kernel.natsd import NatsServer
from darkroom.kernel.provision import provision
from darkroom.kernel.subjects import lane_consumer
from darkroom.worker.handlers import plain
from tests.conftest import REPO, System, cli_env, darkroom_cli, eventually


async def _requested_steps(system: System, task_id: str) -> list[int]:
    return [e["step_index"] for _, _, e in await system.log(f"darkroom.job._.{task_id}.requested.>")]


async def test_a_duplicated_completion_never_advances_a_task_twice(system: System) -> None:
    await system.start()
    task = await system.start_task("sleep_then_two", items=["1.0"])
    await system.wait_job(task["id"], 0, "running")
    # While step 0 runs, a stray duplicate of a completion arrives (same fact, new event id).
    done = await system.wait_job(task["id"], 0, "completed")
    first_completion = (await system.log(f"darkroom.job._.{task['id']}.completed"))[0][2]
    await system.wait_task(task["id"])
    for _ in range(2):
        duplicate = dict(first_completion, id=f"dup-{_}")
        await system.bus.nc.jetstream().publish(
            f"darkroom.job._.{task['id']}.completed", json.dumps(duplicate).encode()
        )
    await system.settled()
    assert done["attempts"] == 1
    assert await _requested_steps(system, task["id"]) == [0, 1, 2]
    assert len(await system.log(f"darkroom.task._.{task['id']}.completed")) == 1


async def test_a_killed_orchestrator_resumes_between_steps_without_repeating_one(system: System) -> None:
    await system.start(roles=("projector", "worker", "api"))
    orchestrator = await system.start(roles=("orchestrator",))
    task = await system.start_task("sleep_then_two", items=["2"])
    await system.wait_job(task["id"], 0, "running")
    await orchestrator.crash()
    await system.wait_job(task["id"], 0, "completed")
    assert (await system.task(task["id"]))["task"]["status"] == "running"  # nobody advanced it
    await system.start(roles=("orchestrator",))  # same durable name: a restart
    view = await system.wait_task(task["id"])
    assert view["task"]["status"] == "completed"
    await system.settled()
    assert await _requested_steps(system, task["id"]) == [0, 1, 2]


async def test_two_orchestrators_advance_every_step_exactly_once_and_say_nothing_of_it(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await system.start(orchestrator_name="orchestrator_a", pipeline__max_parallel_jobs=4)
    await system.start(roles=("orchestrator",), orchestrator_name="orchestrator_b")

    async def client(n: int) -> list[dict]:
        return [await system.start_task("three") for _ in range(n)]

    tasks = [task for batch in await asyncio.gather(*(client(10) for _ in range(6))) for task in batch]
    for task in tasks:
        assert (await system.wait_task(task["id"], timeout=30))["task"]["status"] == "completed"
    await system.settled("orchestrator_a")
    await system.settled("orchestrator_b")
    # Each request is the work its lane hands out: stored once, each task completed once.
    requested = Counter((e["task_id"], e["step_index"]) for _, _, e in await system.log("darkroom.job.*.*.requested.>"))
    assert set(requested.values()) == {1} and len(requested) == 180
    completed = Counter(e["task_id"] for _, _, e in await system.log("darkroom.task.*.*.completed"))
    assert set(completed.values()) == {1} and len(completed) == 60
    # Each refused the other's decisions quietly: no warning, no error, nothing from nats.
    assert [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_killed_workers_job_is_redelivered_and_completed_by_another(system: System) -> None:
    await system.start(roles=("projector", "orchestrator", "api"))
    doomed = await asyncio.create_subprocess_exec(
        *darkroom_cli("worker", "--nats", system.server.url, "--data", str(system.data_dir)),
        env=cli_env(DARKROOM_PIPELINE__PLUGINS="tests.blocking_jobs", DARKROOM_PIPELINE__ACK_WAIT_S="2"),
        cwd=REPO,
    )  # `python -m` imports from its working folder: the plugin module is tests/blocking_jobs.py
    try:
        task = await system.start_task("crash_once")
        await system.wait_job(task["id"], 0, "running", timeout=20)
    finally:
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
    from tests.jobtypes import noop

    await system.start(roles=("worker",), job_types=plain({"crashy": noop}))
    view = await system.wait_task(task["id"], timeout=20)
    assert view["task"]["status"] == "completed"
    assert view["jobs"][0]["attempts"] == 2  # the crash counted as an attempt
    # The lost attempt's job.started, and the quick second one's outcome: each names its worker.
    attempts = [e for _, _, e in await system.log(f"darkroom.job._.{task['id']}.*") if "worker" in e]
    workers = {e["attempt"]: e["worker"] for e in attempts}
    assert sorted(workers) == [1, 2] and workers[1] != workers[2], attempts


async def test_a_long_normal_job_never_delays_a_priority_job(system: System) -> None:
    await system.start()  # 2 slots: 1 priority-only, 1 normal-first
    long = await system.start_task("long_normal", items=["3"])
    await system.wait_job(long["id"], 0, "running")
    quick = await system.start_task("quick_priority")
    view = await system.wait_task(quick["id"], timeout=5)
    job = view["jobs"][0]
    assert job["lane"] == "priority"
    assert (parse_iso(job["started_at"]) - parse_iso(job["created_at"])).total_seconds() < 0.5
    assert (await system.task(long["id"]))["task"]["status"] == "running"


async def test_a_long_priority_job_never_delays_a_normal_job(system: System) -> None:
    await system.start()
    long = await system.start_task("long_priority", items=["3"])
    await system.wait_job(long["id"], 0, "running")
    quick = await system.start_task("quick_normal")
    view = await system.wait_task(quick["id"], timeout=5)
    job = view["jobs"][0]
    assert job["lane"] == "normal"
    assert (parse_iso(job["started_at"]) - parse_iso(job["created_at"])).total_seconds() < 0.5
    assert (await system.task(long["id"]))["task"]["status"] == "running"


async def test_normal_first_slots_take_priority_work_when_the_normal_lane_is_empty(system: System) -> None:
    await system.start(pipeline__max_parallel_jobs=3, pipeline__priority_lane_slots=1)
    tasks = [await system.start_task("long_priority", items=["1"]) for _ in range(3)]
    views = [await system.wait_task(t["id"], timeout=10) for t in tasks]
    jobs = [v["jobs"][0] for v in views]
    # All three ran at once (each began before any ended): no slot idled while work waited.
    assert max(parse_iso(j["started_at"]) for j in jobs) < min(parse_iso(j["finished_at"]) for j in jobs), jobs


async def test_a_missing_lane_consumer_is_recreated_after_the_last_sequence(system: System) -> None:
    runtime = await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    last = await system.bus.last_seq()
    await system.bus.jsm.delete_consumer("DARKROOM", lane_consumer("priority"))
    result = await provision(system.bus.js, runtime.config)
    assert result.recreated_lanes == {"priority": last + 1}
    info = await system.bus.jsm.consumer_info("DARKROOM", lane_consumer("priority"))
    assert info.num_pending == 0 and info.config.opt_start_seq == last + 1  # old jobs are not run again
    assert info.config.ack_wait == runtime.config.pipeline.ack_wait_s


async def test_acknowledged_events_survive_a_killed_server(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    last = await system.bus.last_seq()
    config_text = (system.server.store_dir / "nats-server.conf").read_text()
    assert 'sync_interval: "always"' in config_text
    for runtime in system.runtimes:
        await runtime.crash()
    system.runtimes.clear()
    await system.bus.close()
    system.bus = None
    system.server.kill()
    await system.server.process.wait()
    again = await NatsServer(system.server.store_dir).start()
    try:
        system.server = again
        await system.start(roles=("api", "projector"))
        assert await system.bus.last_seq() == last

        async def replayed():
            return (await system.task(task["id"]))["task"]["status"] == "completed"

        await eventually(replayed)
        await system.verify_replay()
        await system.validate_log()
    finally:
        for runtime in system.runtimes:
            await runtime.stop()
        system.runtimes.clear()
        if system.bus is not None:
            await system.bus.close()
            system.bus = None  # the server it talked to is gone: nothing left to check at teardown
        await again.stop()


async def test_jobs_stranded_by_a_recreated_lane_consumer_are_dispatched_again(system: System) -> None:
    await system.start(roles=("projector", "api"))
    orchestrator = await system.start(roles=("orchestrator",))
    task = await system.start_task("three")
    await system.wait_job(task["id"], 0, "queued")
    await orchestrator.crash()
    await system.bus.jsm.delete_consumer("DARKROOM", lane_consumer("priority"))
    await system.start(roles=("orchestrator", "worker"))  # provisions a fresh lane, then recovers
    view = await system.wait_task(task["id"])
    assert view["task"]["status"] == "completed"
    # The stranded request, and the same stored again for the new lane; the later steps once.
    assert await _requested_steps(system, task["id"]) == [0, 0, 1, 2]


async def test_a_request_stored_by_an_orchestrator_that_stopped_right_after_is_the_work_itself(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    from darkroom.orchestrator.decide import decide
    from darkroom.orchestrator.state import start

    caplog.set_level(logging.INFO)
    await system.start(roles=("projector", "worker", "api"))
    orchestrator = await system.start(roles=("orchestrator",))
    await orchestrator.stop()
    task = await system.start_task("three")
    # What the orchestrator stores first for it, as if it stopped right after: the request alone.
    (stored,) = await system.log(f"darkroom.task._.{task['id']}.requested")
    request = decide(start(system.bus.codec.decode(json.dumps(stored[2]).encode()), stored[0]), 90)[0]
    await system.bus.publish(request.event, request.msg_id, request.expect)
    await system.wait_job(task["id"], 0, "completed")  # a worker took it, no orchestrator running
    await system.start(roles=("orchestrator",))
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"
    assert await _requested_steps(system, task["id"]) == [0, 1, 2]
    assert "again" not in caplog.text


@pytest.mark.parametrize("step_s", [0.5, 3.0], ids=["within the duplicate window", "past it"])
async def test_a_request_stored_behind_the_orchestrators_back_is_neither_stored_again_nor_lost(
    system: System, step_s
) -> None:
    from msgspec.structs import replace

    from darkroom.orchestrator.decide import decide
    from darkroom.orchestrator.state import record, start

    # An orchestrator stored step 1's request and lost the answer with its connection (a nats-server
    # killed in between); the decision on step 0's outcome finds it there and stores no second one.
    await system.start(nats__duplicate_window_s=2.0)
    task = await system.start_task("sleep_then_two", items=[str(step_s)])
    await system.wait_job(task["id"], 0, "running")
    (stored,) = await system.log(f"darkroom.task._.{task['id']}.requested")
    state = start(system.bus.codec.decode(json.dumps(stored[2]).encode()), stored[0])
    for seq, _, event in await system.log(f"darkroom.job._.{task['id']}.requested.>"):
        state = record(state, system.bus.codec.decode(json.dumps(event).encode()), seq)
    request = decide(replace(state, status="running", finished_steps=frozenset({0})), 90)[0]
    await system.bus.publish(request.event, request.msg_id, request.expect)
    assert (await system.wait_task(task["id"], timeout=20))["task"]["status"] == "completed"
    assert await _requested_steps(system, task["id"]) == [0, 1, 2]


async def test_an_outdated_orchestrator_consumer_is_brought_up_to_date_at_start(system: System) -> None:
    from nats.js import api

    from darkroom.kernel.provision import ORCHESTRATOR_FILTERS as FILTERS

    runtime = await system.start(roles=("projector", "worker", "api"))
    await system.bus.jsm.add_consumer(
        "DARKROOM",
        api.ConsumerConfig(
            durable_name="orchestrator",
            filter_subject="darkroom.task.>",
            deliver_subject="_old.orchestrator",
            ack_policy=api.AckPolicy.EXPLICIT,
        ),
    )
    await system.start(roles=("orchestrator",))
    info = await system.bus.jsm.consumer_info("DARKROOM", "orchestrator")
    assert info.config.filter_subjects == FILTERS
    task = await system.start_task("three")
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"
    assert runtime.orchestrator is None


async def test_a_restarted_server_listens_where_it_did_so_clients_come_back(nats_server: NatsServer) -> None:
    bus = await Bus.connect(nats_server.url, "darkroom-test")
    try:
        port = nats_server.port
        nats_server.kill()
        await nats_server.process.wait()
        await nats_server.start()
        assert nats_server.port == port

        async def back():
            return bus.nc.is_connected

        await eventually(back, what="the client to reconnect")
    finally:
        await bus.close()
