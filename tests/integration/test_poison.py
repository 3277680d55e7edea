"""Poison on the bus: set aside once as a dead letter, while real work carries on around it."""

from __future__ import annotations

import asyncio
import json

from darkroom.kernel.definitions import load_definitions
from darkroom.worker.handlers import BUILTIN
from tests.conftest import PHOTOS, System, cli_env, create_project, darkroom_cli, photo_bytes, upload


async def _dead_letters_cli(system: System) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("dead-letters", "--data", str(system.data_dir)),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode()


async def _metric(system: System, name: str) -> float:
    async with system.http.get(f"{system.url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_three_kinds_of_poison_are_set_aside_once_while_an_upload_completes(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    project = await create_project(system, "Poisoned")
    pid = project["project_id"]
    files = sorted((PHOTOS / "orientation").glob("*.jpg")) + sorted((PHOTOS / "cameras").glob("*.jpg"))
    status, body = await upload(system, project["folder"], [(f.name, f.read_bytes()) for f in files])
    assert status == 201, body
    task_id = body["task_id"]

    # Published while the upload is in flight, on subjects each consumer reads: the worker's
    # priority lane, the orchestrator's job outcomes (of the very task running), and its triggers.
    unknown = {
        "type": "job.teleported",
        "v": 1,
        "id": "P2",
        "at": "2024-01-01T00:00:00.000Z",
        "project_id": pid,
        "task_id": task_id,
        "job_id": f"{task_id}-0",
        "source": "user",
    }
    invalid = {
        "type": "task.requested",
        "v": 1,
        "id": "P3",
        "at": "2024-01-01T00:00:00.000Z",
        "project_id": None,
        "task_id": "X",
        "source": "user",
        "task_type": "upload_postprocess",
        "label": "Upload",
        "user_relevant": True,
    }  # no steps
    poison = [
        (
            f"darkroom.job.{pid}.{task_id}.requested.priority.upload_postprocess",
            b'{"type": "job.requested", "v": 1, oops',
        ),
        (f"darkroom.job.{pid}.{task_id}.completed", json.dumps(unknown).encode()),
        ("darkroom.task._.X.requested", json.dumps(invalid).encode()),
    ]
    seqs = [(await system.bus.js.publish(subject, data)).seq for subject, data in poison]

    view = await system.wait_task(task_id, timeout=60)
    assert view["task"]["status"] == "completed", view
    assert all(j["status"] == "completed" for j in view["jobs"])
    completed = [seq for seq, _, e in await system.log(f"darkroom.task.{pid}.{task_id}.completed")]
    assert len(completed) == 1 and completed[0] > max(seqs)  # the poison really came mid-flight

    # Recorded exactly once each, in stream order, with why.
    await system.api.read.wait_for(await system.bus.last_seq(), 10)
    status, body, _ = await system.request("GET", "/api/dead-letters")
    assert status == 200
    letters = sorted(body["dead_letters"], key=lambda d: d["seq"])
    assert [(d["seq"], d["subject"]) for d in letters] == [(seq, subject) for seq, (subject, _) in zip(seqs, poison)]
    reasons = [d["reason"] for d in letters]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "unknown event type 'job.teleported'"
    assert reasons[2].startswith("task.requested fails validation") and "steps" in reasons[2]
    assert all(d["at"].endswith("Z") for d in letters)
    assert await _metric(system, "darkroom_poison_events_total") == 3
    assert await _metric(system, "darkroom_dead_letters") == 3
    code, out = await _dead_letters_cli(system)
    assert code == 0, out
    listed = [line.split("\t") for line in out.splitlines() if line.count("\t") == 3]
    assert sorted((int(seq), subject, reason) for seq, _, subject, reason in listed) == [
        (d["seq"], d["subject"], d["reason"]) for d in letters
    ]

    # Terminated, not redelivered: nothing waits on the orchestrator or the lanes.
    await system.settled("orchestrator")
    for lane in ("lane_priority", "lane_normal"):
        info = await system.bus.jsm.consumer_info("DARKROOM", lane)
        assert info.num_ack_pending == 0 and info.num_redelivered == 0, (lane, info)
    assert system.runtimes[0].orchestrator.poisoned == 2  # the two on its subjects; the lane's went to the worker

    # Everyone is still alive: a later task runs through all its steps.
    status, body = await upload(system, project["folder"], [("later.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    assert status == 201, body
    later = await system.wait_task(body["task_id"], timeout=30)
    assert later["task"]["status"] == "completed"
    assert [j["status"] for j in later["jobs"]] == ["completed"] * 3
    _, body, _ = await system.request("GET", "/api/dead-letters")
    assert len(body["dead_letters"]) == 3
    # The fixture then rebuilds the read model from the log: replay sets the same three aside.


async def test_poison_on_a_tasks_own_subject_does_not_jam_its_steps(system: System) -> None:
    await system.start()
    # Long enough for its job.started (stored after 250 ms) to be seen before it ends, under any load.
    task = await system.start_task("sleep_then_two", items=["2"])
    await system.wait_job(task["id"], 0, "running")
    # An unreadable message on the task's own subjects moves their last sequence.
    await system.bus.nc.jetstream().publish(f"darkroom.task._.{task['id']}.noise", b"{not json")
    await system.bus.nc.jetstream().publish(f"darkroom.job._.{task['id']}.requested", b"{not json")
    for runtime in system.runtimes:  # a fresh orchestrator has to rebuild the task from the log
        if runtime.orchestrator is not None:
            runtime.orchestrator.cache.clear()
    view = await system.wait_task(task["id"], timeout=20)
    assert view["task"]["status"] == "completed" and len(view["jobs"]) == 3


async def test_poison_on_a_jobs_subject_before_the_first_step_does_not_stop_the_task(system: System) -> None:
    # The first step's guard is the task's whole history: an unreadable message there is part of it.
    await system.start(roles=("projector", "worker", "api"))
    task = await system.start_task("quick_normal")
    subject = f"darkroom.job.{task['project_id'] or '_'}.{task['id']}.completed"
    await system.bus.js.publish(subject, b'{"type": "job.teleported", "v": 1}')
    await system.start(roles=("orchestrator",))
    view = await system.wait_task(task["id"], timeout=20)
    assert view["task"]["status"] == "completed", view
