"""What a task stores (CONTRACT §7.1): each stored message costs a disk flush with
`nats.sync_interval: always`, so a task stores only what a reader needs. Counted in the stream."""

from __future__ import annotations

from collections import Counter

from darkroom.kernel.bus import Bus
from darkroom.kernel.clock import parse_iso
from darkroom.kernel.events import (
    Event,
    JobCompleted,
    JobProgress,
    JobRequested,
    JobStarted,
    TaskCompleted,
    TaskStarted,
)
from darkroom.kernel.provision import lane_config, provision
from darkroom.kernel.subjects import lane_consumer, subject_for
from darkroom.worker.service import STARTED_AFTER_S
from tests.conftest import System, create_project, make_config, photo_bytes, start_shipped, upload
from tests.jobtypes import DEFINITIONS


async def _counted(system: System, seq: int) -> Counter:
    """The types of the events stored after `seq`, each with the kind of subject it was stored on. A job
    that ran 250 ms or more stores its job.started, and a progress may go out meanwhile: on a busy machine
    a quick job can take that long, so those are left out of the count (and checked to be of such jobs)."""
    stored = [(subject, e) for s, subject, e in await system.log() if s > seq]
    slow = {
        e["job_id"]
        for _, e in stored
        if e["type"] == "job.completed"
        and (parse_iso(e["at"]) - parse_iso(e["started_at"])).total_seconds() >= STARTED_AFTER_S
    }
    while_running = [e for _, e in stored if e["type"] in ("job.started", "job.progress")]
    assert {e["job_id"] for e in while_running} <= slow, (while_running, slow)
    return Counter(f"{subject.split('.')[1]}:{e['type']}" for subject, e in stored if e not in while_running)


async def test_a_three_step_noop_task_stores_at_most_eight_messages(system: System) -> None:
    await system.start()
    before = await system.bus.last_seq()
    task = await system.start_task("three")  # three no-op steps, each reporting its one item done
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"
    await system.settled()
    counted = await _counted(system, before)
    assert sum(counted.values()) <= 8, counted
    assert counted == {
        "task:task.requested": 1,
        "job:job.requested": 3,
        "job:job.completed": 3,
        "task:task.completed": 1,
    }
    view = await system.task(task["id"])
    assert view["task"]["started_at"] is not None
    assert [(j["status"], j["attempts"], j["progress_done"], j["progress_total"]) for j in view["jobs"]] == [
        ("completed", 1, 1, 1)
    ] * 3


async def test_a_photo_uploaded_alone_stores_at_most_eleven_messages(system: System) -> None:
    await start_shipped(system)
    project = await create_project(system, "Economy")
    # The image processes' first photo pays for their start: the one counted is the next.
    status, body = await upload(system, project["folder"], [("E0.jpg", photo_bytes("cameras/Nikon_D70.jpg"))])
    assert status == 201 and (await system.wait_task(body["task_id"], timeout=30))["task"]["status"] == "completed"
    await system.settled()
    before = await system.bus.last_seq()
    status, body = await upload(system, project["folder"], [("E1.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    assert status == 201, body
    assert (await system.wait_task(body["task_id"], timeout=30))["task"]["status"] == "completed"
    await system.settled()
    counted = await _counted(system, before)
    assert sum(counted.values()) <= 11, counted
    assert counted == {
        "basename:basename.claimed": 1,
        "photo:photo.file_added": 1,
        "task:task.requested": 1,
        "job:job.requested": 3,
        "photo:photo.derivatives_updated": 1,
        "job:job.completed": 3,
        "task:task.completed": 1,
    }
    status, photos, _ = await system.request("GET", f"/api/projects/{project['folder']}/photos")
    photo = next(p for p in photos["photos"] if p["filename"] == "E1")
    assert (photo["thumbnail_status"], photo["preview_status"], photo["make"], photo["width"]) == (
        "generated",
        "generated",
        "Canon",
        100,
    ), photo


# -- a log written before CONTRACT §7.1 -------------------------------------------------------------

THREE = DEFINITIONS["three"]


def _old_layout(task_id: str, steps_done: int) -> list[tuple[str | None, Event]]:
    """A task of `three` as Darkroom stored it before §7.1: task.started, each job.requested with its
    dispatch copy, job.started and job.progress of every job; `steps_done` steps completed (all three:
    the task too)."""
    requested = THREE.requested("three", task_id, "user")
    common = dict(project_id=None, task_id=task_id, source="user")
    out: list[tuple[str | None, Event]] = [(subject_for(requested), requested)]
    for step in range(min(steps_done + 1, 3)):
        job = dict(common, task_type="three", job_id=f"{task_id}-{step}", job_type="noop", step_index=step)
        lane = "normal" if step == 2 else "priority"
        request = JobRequested(**job, priority=THREE.steps[step].priority, lane=lane)
        out += [(f"darkroom.job._.{task_id}.requested", request), (f"darkroom.dispatch.{lane}.noop", request)]
        if step == 0:
            out.append((f"darkroom.task._.{task_id}.started", TaskStarted(**common)))
        if step < steps_done:
            out += [
                (None, JobStarted(**job, attempt=1, worker="old:1")),
                (None, JobProgress(**job, done=1, total=1)),
                (None, JobCompleted(**job, attempt=1)),
            ]
    if steps_done == 3:
        out.append((None, TaskCompleted(**common)))
    return out


async def _store(bus: Bus, log: list[tuple[str | None, Event]]) -> list[int]:
    return [await bus.publish(event, subject=subject or subject_for(event)) for subject, event in log]


async def test_a_log_written_before_7_1_replays_to_the_same_read_models(system: System) -> None:
    bus = await Bus.connect(system.server.url, "old-darkroom")
    try:
        await provision(bus.js, make_config(system.data_dir))
        seqs = await _store(bus, _old_layout("T-old", 3))
    finally:
        await bus.close()
    await system.start(roles=("projector", "api"))
    system.seq = seqs[-1]  # stored behind the api's back: its reads wait for the projector to have it
    view = await system.wait_task("T-old")
    assert view["task"]["status"] == "completed"
    started = next(e for s, _, e in await system.log() if e["type"] == "task.started")
    assert view["task"]["started_at"] == started["at"]
    assert [
        (j["status"], j["lane"], j["attempts"], j["progress_done"], j["started_at"] is not None) for j in view["jobs"]
    ] == [
        ("completed", "priority", 1, 1, True),
        ("completed", "priority", 1, 1, True),
        ("completed", "normal", 1, 1, True),
    ]
    assert len(seqs) == 18  # the old 15, with each job's progress
    # The teardown rebuilds the read model from this log (`replay --verify`) and compares.


async def test_a_task_under_way_in_a_log_from_before_7_1_is_finished_once_after_the_upgrade(system: System) -> None:
    bus = await Bus.connect(system.server.url, "old-darkroom")
    config = make_config(system.data_dir)
    try:
        await provision(bus.js, config)
        for lane in ("priority", "normal"):  # the lanes as they were: taking the copies
            await bus.jsm.delete_consumer("DARKROOM", lane_consumer(lane))
            old = lane_config(lane, config, None)
            old.filter_subject = f"darkroom.dispatch.{lane}.>"
            await bus.jsm.add_consumer("DARKROOM", old)
        seqs = await _store(bus, _old_layout("T-mid", 1))  # step 0 done, step 1 requested and copied, not run
    finally:
        await bus.close()
    await system.start()
    system.seq = seqs[-1]
    assert (await system.wait_task("T-mid"))["task"]["status"] == "completed"
    await system.settled()
    log = [(subject, e) for _, subject, e in await system.log("darkroom.*._.T-mid.>")]
    requested = [(e["step_index"], subject.count(".")) for subject, e in log if e["type"] == "job.requested"]
    # Steps 0 and 1 as the old Darkroom stored them; step 1 stored again for the lanes made anew; step 2 once.
    assert requested == [(0, 4), (1, 4), (1, 6), (2, 6)]
    assert Counter(e["step_index"] for _, e in log if e["type"] == "job.completed") == {0: 1, 1: 1, 2: 1}
    assert [e["type"] for _, e in log if e["type"].startswith("task.")] == [
        "task.requested",
        "task.started",
        "task.completed",
    ]
