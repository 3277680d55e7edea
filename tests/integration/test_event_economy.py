"""What a task stores (CONTRACT §7.1): each stored message costs a disk flush with
`nats.sync_interval: always`, so a task stores only what a reader needs. Counted in the stream."""

from __future__ import annotations

from collections import Counter

from services.kernel.definitions import load_definitions
from services.worker.handlers import BUILTIN
from tests.conftest import System, create_project, photo_bytes, upload


async def _stored_since(system: System, seq: int) -> list[str]:
    """The event types stored after `seq`, each with the subject's first tokens it was stored on."""
    return [f"{subject.split('.')[1]}:{event.get('type')}" for s, subject, event in await system.log() if s > seq]


async def test_a_three_step_noop_task_stores_at_most_eight_messages(system: System) -> None:
    await system.start()
    before = await system.bus.last_seq()
    task = await system.start_task("three")  # three no-op steps, each reporting its one item done
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"
    await system.settled()
    stored = await _stored_since(system, before)
    assert len(stored) <= 8, Counter(stored)
    assert Counter(stored) == {"task:task.requested": 1, "job:job.requested": 3, "job:job.completed": 3,
                               "task:task.completed": 1}
    view = await system.task(task["id"])
    assert view["task"]["started_at"] is not None
    assert [(j["status"], j["attempts"], j["progress_done"], j["progress_total"]) for j in view["jobs"]] == \
        [("completed", 1, 1, 1)] * 3


async def test_a_photo_uploaded_alone_stores_at_most_eleven_messages(system: System) -> None:
    await system.start(handlers=BUILTIN, definitions=load_definitions())
    project = await create_project(system, "Economy")
    await system.settled()
    before = await system.bus.last_seq()
    status, body = await upload(system, project["folder"], [("E1.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    assert status == 201, body
    assert (await system.wait_task(body["task_id"], timeout=30))["task"]["status"] == "completed"
    await system.settled()
    stored = await _stored_since(system, before)
    assert len(stored) <= 11, Counter(stored)
    status, photos, _ = await system.request("GET", f"/api/projects/{project['folder']}/photos")
    photo = photos["photos"][0]
    assert (photo["thumbnail_status"], photo["preview_status"], photo["make"], photo["width"]) == \
        ("generated", "generated", "Canon", 100), photo
