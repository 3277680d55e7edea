"""Effects at most once: a job whose outcome is stored, or whose task ended, never runs again,
whoever hands it out and however late; maintenance once per project and interval.

The stream's duplicate window is one second here, so "longer than the window" takes a moment;
the waits past it are the scenario itself (time passing), not a wait for an event.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from darkroom.kernel import subjects
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.events import JobRequested
from darkroom.kernel.subjects import lane_consumer
from darkroom.kernel.vocabulary import LANES
from darkroom.worker.handlers import BUILTIN
from tests.conftest import System, create_project, eventually, photo_bytes, upload

WINDOW_S = 1.0
JPEG = "cameras/Canon_40D.jpg"


async def _start(system: System, **settings):
    """The shipped definitions and handlers, a short duplicate window, no schedule unless asked."""
    settings.setdefault("job_types", BUILTIN)
    return await system.start(definitions=load_definitions(), nats__duplicate_window_s=WINDOW_S, **settings)


async def _past_the_window() -> None:
    await asyncio.sleep(WINDOW_S * 1.5)


async def _idle(system: System, *consumers: str) -> None:
    """Everything stored so far was handled: by the named orchestrators and by the workers."""
    for consumer in (*consumers, *(lane_consumer(lane) for lane in LANES)):
        await system.settled(consumer, timeout=30)


def _complaints(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name} {r.levelname}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]


async def _culled(system: System, name: str) -> tuple[dict, object, str]:
    """A project with P1 committed to the trash, and P2 unticked afterwards but never committed."""
    project = await create_project(system, name)
    status, body = await upload(
        system, project["folder"], [("P1.jpg", photo_bytes(JPEG)), ("P2.jpg", photo_bytes("cameras/Nikon_D70.jpg"))]
    )
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    folder = project["folder"]
    await _keep(system, folder, "P1")
    status, commit, _ = await system.request("POST", f"/api/projects/{folder}/commit-changes")
    assert status == 202, commit
    assert (await system.wait_task(commit["task_id"], timeout=30))["task"]["status"] == "completed"
    await _keep(system, folder, "P2")
    return project, system.data_dir / "projects" / folder, commit["task_id"]


async def _keep(system: System, folder: str, filename: str) -> None:
    status, body, _ = await system.request(
        "PUT", f"/api/projects/{folder}/keep", {"updates": [{"filename": filename, "keep_jpg": False}]}
    )
    assert status == 200, body


async def _first_request(system: System, project_id: str, task_id: str) -> JobRequested:
    async for batch in system.bus.read([f"{subjects.job_prefix(project_id, task_id)}.>"]):
        for stored in batch:
            event = system.bus.codec.decode(stored.data)
            if isinstance(event, JobRequested) and event.step_index == 0:
                return event
    raise AssertionError(f"task {task_id} has no job.requested")


async def _per_job(system: System, subject: str) -> Counter:
    return Counter(e["job_id"] for _, _, e in await system.log(subject))


async def _after(system: System, job: JobRequested, seq: int) -> list[str]:
    """The types of the job's events stored after sequence `seq`."""
    return [
        e["type"]
        for s, _, e in await system.log(f"{subjects.job_prefix(job.project_id, job.task_id or '')}.>")
        if s > seq and e["job_id"] == job.job_id
    ]


async def test_an_orchestrator_restarted_past_the_window_runs_no_finished_job_again(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await _start(system, orchestrator_name="orchestrator_a")
    stopped = await _start(system, roles=("orchestrator",), orchestrator_name="orchestrator_b")
    await stopped.stop()
    project, folder, commit = await _culled(system, "Late")
    await _past_the_window()
    # It comes back to every message it missed, its cache empty, the duplicate window long over.
    await _start(system, roles=("orchestrator",), orchestrator_name="orchestrator_b")
    await _idle(system, "orchestrator_a", "orchestrator_b")
    assert (folder / "P2.jpg").exists() and not (folder / ".trash" / "P2.jpg").exists()  # never committed
    assert (folder / ".trash" / "P1.jpg").exists()
    # A request is the work a lane hands out (CONTRACT §7.1): none stored twice, none run twice.
    requested = Counter((e["task_id"], e["step_index"]) for _, _, e in await system.log("darkroom.job.*.*.requested.>"))
    assert set(requested.values()) == {1}, requested
    assert set((await _per_job(system, "darkroom.job.*.*.started")).values()) <= {1}
    outcomes = await _per_job(system, "darkroom.job.*.*.completed")
    assert set(outcomes.values()) == {1} and outcomes[f"{commit}-0"] == 1
    assert len(await system.log(f"darkroom.task.{project['project_id']}.{commit}.completed")) == 1
    assert _complaints(caplog) == []  # two orchestrators cooperating, one late: nothing to worry an operator


async def test_a_late_copy_of_a_finished_job_is_left_alone_by_the_worker(system: System) -> None:
    await _start(system)
    project, folder, commit = await _culled(system, "Copy")
    job = await _first_request(system, project["project_id"], commit)
    assert job.job_type == "file_removal"
    await _past_the_window()
    # The finished commit's file_removal, requested again, on its lane: whoever sends it, the worker reads the log.
    late = await system.bus.publish(job)
    await _idle(system, "orchestrator")
    assert (folder / "P2.jpg").exists() and not (folder / ".trash" / "P2.jpg").exists()
    assert await _after(system, job, late) == []  # not run: no job.started, no outcome
    for outcome in ("completed", "failed", "canceled"):
        assert (await _per_job(system, f"darkroom.job.*.*.{outcome}"))[f"{commit}-0"] == (outcome == "completed")


async def test_a_job_canceled_while_queued_is_not_reported_again_when_a_worker_takes_it(system: System) -> None:
    await system.start(roles=("projector", "orchestrator", "api"), nats__duplicate_window_s=WINDOW_S)
    task = await system.start_task("three")
    await system.wait_job(task["id"], 0, "queued")
    status, _, _ = await system.request("POST", f"/api/tasks/{task['id']}/cancel")
    assert status == 202
    assert (await system.wait_task(task["id"]))["task"]["status"] == "canceled"
    await _past_the_window()
    await system.start(roles=("worker",), nats__duplicate_window_s=WINDOW_S)  # takes the request still in its lane
    await _idle(system, "orchestrator")
    job = await _first_request(system, None, task["id"])
    assert await _after(system, job, 0) == ["job.requested", "job.canceled"]  # never run, canceled once


async def test_maintenance_runs_once_per_project_and_interval_across_restarts_and_orchestrators(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await _start(system)
    projects = [await create_project(system, name) for name in ("Sched A", "Sched B")]
    # An interval of weeks: every start below falls in the same one.
    weekly = dict(roles=("orchestrator",), maintenance__interval_s=1e6)
    a = await _start(system, orchestrator_name="orchestrator_a", **weekly)
    await _swept(system, projects, 1)
    await a.stop()
    await _past_the_window()
    await _start(system, orchestrator_name="orchestrator_a", **weekly)  # restarted
    await _start(system, orchestrator_name="orchestrator_b", **weekly)  # and a second one
    await _idle(system, "orchestrator", "orchestrator_a", "orchestrator_b")
    assert Counter(await _maintenance(system)) == {p["project_id"]: 1 for p in projects}
    assert _complaints(caplog) == []


async def _maintenance(system: System) -> list[str]:
    return [
        e["project_id"]
        for _, _, e in await system.log("darkroom.task.*.*.requested")
        if e["task_type"] == "maintenance"
    ]


async def _swept(system: System, projects: list[dict], times: int) -> None:
    async def check():
        return Counter(await _maintenance(system)) == {p["project_id"]: times for p in projects}

    await eventually(check, 10, "one maintenance task per project")


async def test_a_job_waiting_for_a_lagging_read_model_is_not_handed_to_a_second_worker(system: System) -> None:
    projector = await _start(system, roles=("projector",))
    await _start(system, roles=("orchestrator", "api"))
    await _start(system, roles=("worker",))
    project = await create_project(system, "Lag")
    status, body = await upload(system, project["folder"], [("L1.jpg", photo_bytes(JPEG))])
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    await _keep(system, project["folder"], "L1")
    await system.request("GET", f"/api/projects/{project['folder']}")  # the keep change is applied
    await projector.stop()  # the read model stays behind the log from here
    status, commit, _ = await system.request("POST", f"/api/projects/{project['folder']}/commit-changes")
    assert status == 202, commit
    job_id = f"{commit['task_id']}-0"

    async def started() -> bool:
        return (await _per_job(system, "darkroom.job.*.*.started"))[job_id] > 0

    await eventually(started, 10, "file_removal to start waiting for the read model")
    ack_wait = system.runtimes[-1].config.pipeline.ack_wait_s
    await asyncio.sleep(3 * ack_wait)  # the time a lost worker's job takes to be handed out again, twice
    await _start(system, roles=("projector",))
    assert (await system.wait_task(commit["task_id"], timeout=30))["task"]["status"] == "completed"
    assert (await _per_job(system, "darkroom.job.*.*.started"))[job_id] == 1  # one attempt, never two at once
    for outcome in ("retrying", "failed", "canceled"):
        assert (await _per_job(system, f"darkroom.job.*.*.{outcome}"))[job_id] == 0


async def test_a_job_delivered_again_while_it_runs_is_not_run_a_second_time_nor_holds_a_slot(system: System) -> None:
    # A nats-server killed with -9 can lose its consumer's state and deliver a running job again at
    # once, to a free slot of the same worker: the copy here is that second delivery.
    await system.start(nats__duplicate_window_s=WINDOW_S, pipeline__max_parallel_jobs=2)
    task = await system.start_task("long_priority", items=["3"])
    await system.wait_job(task["id"], 0, "running")
    job = await _first_request(system, None, task["id"])
    await system.bus.publish(job)  # the same request stored again: the lane hands it out again

    async def both_delivered() -> bool:
        return (await system.bus.jsm.consumer_info("DARKROOM", lane_consumer("priority"))).num_ack_pending == 2

    await eventually(both_delivered, 5, "the copy to be delivered while the job runs")
    quick = await system.start_task("quick_priority")  # the other slot is free for it
    assert (await system.wait_task(quick["id"]))["task"]["status"] == "completed"
    assert (await system.task(task["id"]))["task"]["status"] == "running"
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"
    await _idle(system, "orchestrator")
    kinds = await _after(system, job, 0)
    assert kinds[kinds.index("job.completed") + 1 :] == [], kinds  # nothing of the job after its outcome: it ran once
    assert kinds.count("job.started") == 1 and kinds.count("job.completed") == 1, kinds
