"""A basename lives in one project only (CONTRACT §2), also when two projects take it at the same moment."""

from __future__ import annotations

import asyncio

from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.folders import projects_root
from darkroom.worker.handlers import BUILTIN
from tests.conftest import System, create_project, photo_bytes, upload


async def test_two_projects_uploading_one_basename_at_once_get_one_owner(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    projects = [await create_project(system, name) for name in ("Left", "Right")]
    photo = photo_bytes("cameras/Canon_40D.jpg")
    owners: dict[str, str] = {}
    tasks = []
    for n in range(8):
        name = f"RACE_{n}"
        answers = await asyncio.gather(*(upload(system, p["folder"], [(f"{name}.jpg", photo)]) for p in projects))
        accepted = [p["folder"] for p, (_, body) in zip(projects, answers) if body["files"]]
        assert len(accepted) == 1, (name, answers)
        owners[name] = accepted[0]
        for status, body in answers:
            if body["files"]:
                assert status == 201 and not body["errors"]
                tasks.append(body["task_id"])
            else:
                assert status == 400 and body["errors"][0]["name"] == f"{name}.jpg", body
                assert f"project {owners[name]!r}" in body["errors"][0]["error"], body
    for task_id in tasks:
        await system.wait_task(task_id, timeout=60)
    for project in projects:
        status, body, _ = await system.request("GET", f"/api/projects/{project['folder']}/photos")
        assert {p["filename"] for p in body["photos"]} == {n for n, f in owners.items() if f == project["folder"]}
        on_disk = {p.stem for p in (projects_root(system.data_dir) / project["folder"]).glob("RACE_*")}
        assert on_disk == {n for n, f in owners.items() if f == project["folder"]}


async def test_the_owner_uploads_its_basename_again_and_others_still_cannot(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    left, right = [await create_project(system, name) for name in ("Left", "Right")]
    status, body = await upload(system, left["folder"], [("OWN.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    assert status == 201
    await system.wait_task(body["task_id"], timeout=30)
    status, body = await upload(system, left["folder"], [("OWN.cr2", b"raw" * 100)])
    assert status == 201 and [f["filename"] for f in body["files"]] == ["OWN"], body
    await system.wait_task(body["task_id"], timeout=30)
    status, body = await upload(system, right["folder"], [("OWN.dng", b"dng" * 100)])
    assert status == 400 and "already lives in project 'Left'" in body["errors"][0]["error"], body


async def test_a_basename_removed_from_its_project_can_go_to_another_at_once(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    left, right = [await create_project(system, name) for name in ("Left", "Right")]
    photo = photo_bytes("cameras/Canon_40D.jpg")
    status, body = await upload(system, left["folder"], [("MOVE.jpg", photo)])
    await system.wait_task(body["task_id"], timeout=30)
    await system.request(
        "PUT", f"/api/projects/{left['folder']}/keep", {"updates": [{"filename": "MOVE", "keep_jpg": False}]}
    )
    status, body, _ = await system.request("POST", f"/api/projects/{left['folder']}/commit-changes")
    assert status == 202, body
    await system.wait_task(body["task_id"], timeout=30)
    status, photos, _ = await system.request("GET", f"/api/projects/{left['folder']}/photos")
    assert photos["photos"] == []
    status, body = await upload(system, right["folder"], [("MOVE.jpg", photo)])
    assert status == 201 and [f["filename"] for f in body["files"]] == ["MOVE"], body
    await system.wait_task(body["task_id"], timeout=30)
    status, body = await upload(system, left["folder"], [("MOVE.jpg", photo)])
    assert status == 400 and "already lives in project 'Right'" in body["errors"][0]["error"], body
    status, trash, _ = await system.request("GET", f"/api/projects/{left['folder']}/trash")
    assert [t["name"] for t in trash["trash"]] == ["MOVE.jpg"]
    status, body, _ = await system.request(
        "POST", f"/api/projects/{left['folder']}/trash/restore", {"names": ["MOVE.jpg"]}
    )
    assert status == 409 and body == {"error": "MOVE already lives in project 'Right'"}
    assert (projects_root(system.data_dir) / left["folder"] / ".trash" / "MOVE.jpg").exists()
