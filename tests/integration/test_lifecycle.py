"""The project lifecycle of CONTRACT §7.4 on real folders and a real nats-server: regenerate, rename,
delete and restore, purge, photo moves between projects, folders adopted by maintenance."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from darkroom.kernel.events import PhotoMoveStarted
from darkroom.kernel.manifest import read_manifest
from darkroom.kernel.photos import name_key
from tests.conftest import (
    PHOTOS,
    SSEClient,
    System,
    cli_env,
    create_project,
    darkroom_cli,
    eventually,
    photo_bytes,
    photos_of,
    shoot,
    start_shipped,
    upload,
)

JPG = photo_bytes("cameras/Canon_40D.jpg")
XMP = b'<?xml version="1.0"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'


def _jpgs(n: int) -> list[tuple[str, bytes]]:
    return [(f.name, f.read_bytes()) for f in sorted((PHOTOS / "orientation").glob("*.jpg"))[:n]]


async def _done(system: System, status: int, body: dict, timeout: float = 30) -> dict:
    assert status == 202, body
    view = await system.wait_task(body["task"]["id"], timeout=timeout)
    assert view["task"]["status"] == "completed", view
    return view


async def _events(system: System, subject: str) -> list[dict]:
    return [event for _, _, event in await system.log(subject)]


# -- regenerate ---------------------------------------------------------------------------------


async def test_regenerate_remakes_generated_derivatives_and_metadata_in_the_normal_lane(system: System) -> None:
    await start_shipped(system)
    project, folder = await shoot(system, "Regen", _jpgs(3))
    pid = project["project_id"]
    before = await _events(system, f"darkroom.photo.{pid}.*.derivatives_updated")
    thumb = folder / ".thumb" / "landscape_1.webp"
    made = thumb.stat().st_mtime_ns

    status, body, _ = await system.request(
        "POST", "/api/projects/Regen/regenerate", {"items": ["landscape_1"], "what": ["derivatives"]}
    )
    view = await _done(system, status, body)
    assert body["task"]["type"] == "regenerate"
    assert [(j["type"], j["lane"], j["progress_done"], j["progress_total"]) for j in view["jobs"]] == [
        ("regenerate", "normal", 1, 1)
    ]
    after = await _events(system, f"darkroom.photo.{pid}.*.derivatives_updated")
    assert [e["filename"] for e in after[len(before) :]] == ["landscape_1"]  # even though it was generated
    assert thumb.stat().st_mtime_ns > made
    assert not [
        e
        for e in await _events(system, f"darkroom.photo.{pid}.*.metadata_extracted")
        if e["task_id"] == body["task"]["id"]
    ]  # derivatives only, as asked

    status, body, _ = await system.request("POST", "/api/projects/Regen/regenerate", {"what": ["metadata"]})
    await _done(system, status, body)
    read = [
        e["filename"]
        for e in await _events(system, f"darkroom.photo.{pid}.*.metadata_extracted")
        if e["task_id"] == body["task"]["id"]
    ]
    assert sorted(read) == ["landscape_1", "landscape_2", "landscape_3"]  # the whole project
    assert len(await _events(system, f"darkroom.photo.{pid}.*.derivatives_updated")) == len(after)


async def test_regenerate_refuses_what_it_cannot_do_and_changes_nothing(system: System) -> None:
    await start_shipped(system)
    await shoot(system, "Regen", _jpgs(1))
    for body, status, words in (
        ({"items": ["nope"]}, 404, "no photo 'nope'"),
        ({"what": ["thumbnails"]}, 400, "invalid request body"),
        ({"what": []}, 400, "invalid request body"),
    ):
        got, answer, _ = await system.request("POST", "/api/projects/Regen/regenerate", body)
        assert (got, words in answer["error"]) == (status, True), answer
    got, answer, _ = await system.request("POST", "/api/projects/Nope/regenerate", {})
    assert got == 404
    status, tasks, _ = await system.request("GET", "/api/projects/Regen/tasks?type=regenerate")
    assert tasks["tasks"] == []


# -- rename -------------------------------------------------------------------------------------


async def test_rename_moves_the_folder_keeps_the_id_and_open_pages_follow_it(system: System) -> None:
    await start_shipped(system)
    project, folder = await shoot(system, "Beach", _jpgs(2))
    pid = project["project_id"]
    async with SSEClient(system.http, f"{system.url}/api/events?project=Beach") as sse:
        status, body, _ = await system.request("PATCH", "/api/projects/Beach", {"name": "Beach: day 1"})
        await _done(system, status, body)
        _, _, renamed = await sse.wait_for(lambda m: m[1] == "project_renamed", what="project_renamed")
        assert renamed == {
            "project_id": pid,
            "folder": "Beach day 1",
            "name": "Beach: day 1",
            "previous_folder": "Beach",
        }
        # The page's stream follows the project, now in its new folder.
        status, _, _ = await system.request(
            "PUT", "/api/projects/Beach day 1/keep", {"updates": [{"filename": "landscape_1", "keep_jpg": False}]}
        )
        assert status == 200
        await sse.wait_for(lambda m: m[1] == "pending_changes" and m[2]["folder"] == "Beach day 1")
    root = system.data_dir / "projects"
    assert not folder.exists() and (root / "Beach day 1" / "landscape_1.jpg").is_file()
    assert read_manifest(root / "Beach day 1").name == "Beach: day 1"
    assert read_manifest(root / "Beach day 1").id == pid
    for path in ("/api/projects/Beach", "/api/projects/Beach/photos", "/api/projects/Beach/thumbnail/landscape_1"):
        status, _, _ = await system.request("GET", path)
        assert status == 404, path
    status, got, _ = await system.request("GET", "/api/projects/Beach day 1")
    assert (got["project"]["project_id"], got["project"]["name"], got["counts"]["photos"]) == (pid, "Beach: day 1", 2)
    async with system.http.get(f"{system.url}/api/projects/Beach day 1/thumbnail/landscape_1") as response:
        assert response.status == 200

    # Work after the rename happens in the new folder, maintenance included; a restart changes nothing.
    await system.runtimes[-1].stop()
    await start_shipped(system)
    status, body, _ = await system.request("POST", "/api/projects/Beach day 1/tasks", {"type": "maintenance"})
    await _done(system, status, body)
    assert [f["filename"] for f in (await photos_of(system, "Beach day 1")).values()] == ["landscape_1", "landscape_2"]
    assert not folder.exists()


async def test_a_rename_to_a_taken_name_numbers_the_folder_and_bad_names_are_refused(system: System) -> None:
    await start_shipped(system)
    await create_project(system, "Alps")
    await create_project(system, "Dunes")
    status, body, _ = await system.request("PATCH", "/api/projects/Dunes", {"name": "Alps"})
    await _done(system, status, body)
    status, got, _ = await system.request("GET", "/api/projects/Alps (2)")
    assert (status, got["project"]["name"]) == (200, "Alps")
    for name in ("///", "", "x" * 300):
        status, answer, _ = await system.request("PATCH", "/api/projects/Alps", {"name": name})
        assert status == 400 and "project name" in answer["error"], answer
    status, _, _ = await system.request("PATCH", "/api/projects/Nope", {"name": "Fine"})
    assert status == 404


# -- delete, restore, purge --------------------------------------------------------------------


async def test_delete_cancels_its_tasks_moves_the_folder_to_the_trash_and_restore_brings_it_back(
    system: System,
) -> None:
    await start_shipped(system, maintenance__trash_ttl_s=3600)
    project, folder = await shoot(system, "Gone", _jpgs(2))
    pid = project["project_id"]
    await create_project(system, "Other")
    status, body, _ = await system.request("DELETE", "/api/projects/Gone")
    view = await _done(system, status, body)
    assert view["task"]["type"] == "project_delete"
    assert not folder.exists() and (system.data_dir / "trash" / pid / "landscape_1.jpg").is_file()
    status, listing, _ = await system.request("GET", "/api/projects")
    assert [p["folder"] for p in listing["projects"]] == ["Other"]
    status, _, _ = await system.request("GET", "/api/projects/Gone")
    assert status == 404
    status, trash, _ = await system.request("GET", "/api/trash/projects")
    [entry] = trash["projects"]
    assert (entry["project_id"], entry["folder"], entry["photo_count"]) == (pid, "Gone", 2)
    assert _seconds(entry["expires_at"]) - _seconds(entry["deleted_at"]) == 3600
    # Its basenames stay its own until it is purged: restoring it gets them back.
    status, refused = await upload(system, "Other", [("landscape_1.jpg", _jpgs(1)[0][1])])
    assert status == 400 and "deleted project 'Gone'" in refused["errors"][0]["error"], refused
    status, checked, _ = await system.request(
        "POST", "/api/projects/Other/upload/check", {"files": [{"name": "landscape_1.jpg", "size": 10}]}
    )
    assert checked["files"][0]["status"] == "refused" and "restore that project" in checked["files"][0]["reason"]

    await system.runtimes[-1].stop()  # it stays deleted, and restorable, across a restart
    await start_shipped(system, maintenance__trash_ttl_s=3600)
    await create_project(system, "Gone")  # its folder name is free meanwhile
    status, body, _ = await system.request("POST", f"/api/trash/projects/{pid}/restore")
    view = await _done(system, status, body)
    assert view["task"]["type"] == "project_restore"
    status, restored, _ = await system.request("GET", "/api/projects/Gone (2)")
    assert restored["project"]["project_id"] == pid
    assert (system.data_dir / "projects" / "Gone (2)" / "landscape_1.jpg").is_file()
    assert sorted(await photos_of(system, "Gone (2)")) == ["landscape_1", "landscape_2"]
    status, again, _ = await system.request("POST", f"/api/trash/projects/{pid}/restore")
    assert status == 409 and "is not deleted" in again["error"]
    status, unknown, _ = await system.request("POST", "/api/trash/projects/NOPE/restore")
    assert status == 404


async def test_a_delete_cancels_the_projects_running_tasks_first(system: System) -> None:
    from darkroom.kernel.definitions import load_definitions
    from darkroom.worker.handlers import BUILTIN
    from tests.jobtypes import DEFINITIONS, JOB_TYPES

    await system.start(job_types=BUILTIN | JOB_TYPES, definitions=load_definitions() | DEFINITIONS)
    project = await create_project(system, "Busy")
    status, body, _ = await system.request(
        "POST", "/api/projects/Busy/tasks", {"type": "slow_items", "items": [str(n) for n in range(300)]}
    )
    assert status == 202, body
    busy = body["task"]["id"]
    await system.wait_job(busy, 0, "running")
    status, deleting, _ = await system.request("DELETE", "/api/projects/Busy")
    await _done(system, status, deleting)
    assert (await system.task(busy))["task"]["status"] == "canceled"
    assert (system.data_dir / "trash" / project["project_id"]).is_dir()


async def test_maintenance_purges_a_deleted_project_after_the_trash_ttl_and_frees_its_basenames(system: System) -> None:
    await start_shipped(system, maintenance__trash_ttl_s=0.5)
    project, _ = await shoot(system, "Old", _jpgs(1))
    await create_project(system, "New")
    status, body, _ = await system.request("DELETE", "/api/projects/Old")
    await _done(system, status, body)
    time.sleep(0.6)
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "projects_maintenance"})
    await _done(system, status, body)
    assert not (system.data_dir / "trash" / project["project_id"]).exists()
    status, trash, _ = await system.request("GET", "/api/trash/projects")
    assert trash["projects"] == []
    status, restored, _ = await system.request("POST", f"/api/trash/projects/{project['project_id']}/restore")
    assert status == 404
    status, again = await upload(system, "New", _jpgs(1))
    assert status == 201 and again["files"], again


# -- moves --------------------------------------------------------------------------------------


async def test_photos_move_with_every_file_and_decision_and_their_basename_goes_with_them(system: System) -> None:
    await start_shipped(system)
    a, here = await shoot(system, "A", [("P1.jpg", JPG), ("P2.jpg", JPG)])
    status, body = await upload(system, "A", [("P1.xmp", XMP)])
    assert status == 201 and body["files"], body
    b = await create_project(system, "B")
    status, _, _ = await system.request(
        "PUT", "/api/projects/A/keep", {"updates": [{"filename": "P1", "keep_jpg": False}]}
    )
    status, body, _ = await system.request("POST", "/api/projects/B/move", {"items": ["P1"]})
    view = await _done(system, status, body)
    assert view["task"]["type"] == "photo_move" and view["task"]["folder"] == "B"
    there = system.data_dir / "projects" / "B"
    for name in ("P1.jpg", "P1.xmp", ".thumb/P1.webp", ".preview/P1.jpg"):
        assert (there / name).is_file() and not (here / name).exists(), name
    assert sorted(await photos_of(system, "A")) == ["P2"]
    moved = (await photos_of(system, "B"))["P1"]
    assert (moved["keep_jpg"], moved["thumbnail_status"], moved["files"]) == (False, "generated", ["P1.jpg"])
    status, got, _ = await system.request("GET", "/api/projects/B")
    assert got["counts"]["pending_photos"] == 1
    status, got, _ = await system.request("GET", "/api/projects/A")
    assert (got["counts"]["photos"], got["counts"]["pending_photos"]) == (1, 0)

    source = [
        e["type"]
        for e in await _events(system, f"darkroom.photo.{a['project_id']}.*.>")
        if e["task_id"] == body["task"]["id"]
    ]
    assert source == ["photo.move_started"] + ["photo.file_moved"] * 4
    arrived = await _events(system, f"darkroom.photo.{b['project_id']}.*.moved")
    assert [(e["filename"], e["from_project_id"]) for e in arrived] == [("P1", a["project_id"])]
    claims = await _events(system, f"darkroom.basename.{name_key('P1')}.claimed")
    assert claims[-1]["project_id"] == b["project_id"]
    status, refused = await upload(system, "A", [("P1.jpg", JPG)])
    assert status == 400 and "already lives in project 'B'" in refused["errors"][0]["error"]
    status, answer, _ = await system.request("POST", "/api/projects/B/move", {"items": ["nope"]})
    assert status == 404 and "no project has a photo 'nope'" in answer["error"]


async def test_a_move_that_stopped_half_way_is_finished_by_the_maintenance_of_the_project_it_left(
    system: System,
) -> None:
    await start_shipped(system)
    a, here = await shoot(system, "A", [("P1.jpg", JPG)])
    status, body = await upload(system, "A", [("P1.xmp", XMP)])
    b = await create_project(system, "B")
    there = system.data_dir / "projects" / "B"
    # What a worker that died after its first file leaves: the move recorded as started, one file across.
    names = ["P1.jpg", "P1.xmp", ".preview/P1.jpg", ".thumb/P1.webp"]
    await system.bus.publish(
        PhotoMoveStarted(
            project_id=a["project_id"], filename="P1", source="user", to_project_id=b["project_id"], names=names
        )
    )
    os.rename(here / "P1.xmp", there / "P1.xmp")
    status, body, _ = await system.request("POST", "/api/projects/A/tasks", {"type": "maintenance"})
    await _done(system, status, body)

    async def finished():
        photos = await photos_of(system, "B")
        return photos if "P1" in photos else None

    photos = await eventually(finished, 30, "the move to finish")
    assert photos["P1"]["files"] == ["P1.jpg"] and await photos_of(system, "A") == {}
    assert all((there / n).is_file() and not (here / n).exists() for n in names)


# -- folder discovery --------------------------------------------------------------------------


async def test_maintenance_adopts_a_folder_made_by_hand_and_reports_one_it_cannot(system: System) -> None:
    await start_shipped(system)
    await create_project(system, "Known")
    root = system.data_dir / "projects"
    made = root / "From the card"
    made.mkdir()
    for name, data in _jpgs(2):
        (made / name).write_bytes(data)
    odd = root / "Bad: name"
    odd.mkdir()
    _age(made, odd)
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "projects_maintenance"})
    await _done(system, status, body)

    async def adopted():
        photos = await photos_of(system, "From the card")
        return (
            photos if len(photos) == 2 and all(p["thumbnail_status"] == "generated" for p in photos.values()) else None
        )

    await eventually(adopted, 30, "the folder's photos to be adopted")
    manifest = read_manifest(made)
    status, got, _ = await system.request("GET", "/api/projects/From the card")
    assert manifest is not None and got["project"]["project_id"] == manifest.id
    status, unadopted, _ = await system.request("GET", "/api/unadopted-folders")
    [entry] = unadopted["folders"]
    assert entry["folder"] == "Bad: name" and "rename the folder" in entry["reason"]

    # A second run reports nothing new; once renamed by hand, the folder is adopted.
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "projects_maintenance"})
    await _done(system, status, body)
    assert len(await _events(system, "darkroom.folder.*.refused")) == 1
    odd.rename(root / "Good name")
    _age(root / "Good name")
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "projects_maintenance"})
    await _done(system, status, body)
    status, unadopted, _ = await system.request("GET", "/api/unadopted-folders")
    assert unadopted["folders"] == []
    status, got, _ = await system.request("GET", "/api/projects/Good name")
    assert status == 200


async def test_a_project_folder_renamed_by_hand_takes_its_project_with_it(system: System) -> None:
    await start_shipped(system)
    project, folder = await shoot(system, "Before", _jpgs(1))
    folder.rename(folder.with_name("After"))
    _age(folder.with_name("After"))
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "projects_maintenance"})
    await _done(system, status, body)
    status, got, _ = await system.request("GET", "/api/projects/After")
    assert (status, got["project"]["project_id"], got["counts"]["photos"]) == (200, project["project_id"], 1)


def _age(*folders: Path) -> None:
    """As if made a while ago: discovery leaves a folder that changed in the last minute for its next run."""
    past = time.time() - 3600
    for folder in folders:
        os.utime(folder, (past, past))


def _seconds(stamp: str) -> float:
    from darkroom.kernel.clock import parse_iso

    return parse_iso(stamp).timestamp()


# -- the same from a terminal -----------------------------------------------------------------------


async def _darkroom(system: System, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli(*args, "--nats", system.server.url, "--data", str(system.data_dir)),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode()


async def test_every_lifecycle_control_works_from_darkroom_and_shows_in_its_audit(system: System) -> None:
    await start_shipped(system)
    project, _ = await shoot(system, "Cli", _jpgs(2))
    pid = project["project_id"]
    await create_project(system, "Other")

    code, out = await _darkroom(system, "regenerate", "Cli", "landscape_1", "--what", "derivatives", "--wait")
    assert code == 0 and "regenerate task" in out and ": completed" in out, out
    code, out = await _darkroom(system, "regenerate", "Cli", "nope")
    assert code == 2 and "no photo 'nope' in project 'Cli'" in out, out
    code, out = await _darkroom(system, "rename", "Cli", "Cli: two", "--wait")
    assert code == 0, out
    code, out = await _darkroom(system, "move", "Other", "landscape_2", "--wait")
    assert code == 0, out
    assert sorted(await photos_of(system, "Other")) == ["landscape_2"]
    code, out = await _darkroom(system, "delete", "Cli two", "--wait")
    assert code == 0, out
    code, out = await _darkroom(system, "deleted")
    assert code == 0 and out.startswith(f"{pid}\tCli two\t1 photos\tdeleted "), out
    code, out = await _darkroom(system, "undelete", pid, "--wait")
    assert code == 0, out
    assert sorted(await photos_of(system, "Cli two")) == ["landscape_1"]
    code, out = await _darkroom(system, "undelete", pid)
    assert code == 2 and "no deleted project" in out, out

    code, out = await _darkroom(system, "audit", "project", "Cli two")
    assert code == 0, out
    for words in (
        "project.renamed",
        "folder 'Cli' → 'Cli two', name 'Cli: two'",
        "project.deleted",
        "project.restored",
        "regenerate: regenerate; items landscape_1; what ['derivatives']",
        "landscape_2: moving to project",
    ):
        assert words in out, (words, out)
    code, out = await _darkroom(system, "audit", "photo", "Other", "landscape_2")
    assert code == 0 and f"landscape_2: arrived from project {pid}" in out, out


async def test_a_task_asked_for_before_a_rename_works_in_the_new_folder(system: System, monkeypatch) -> None:
    from darkroom.kernel.definitions import TaskDefinition, load_definitions
    from darkroom.kernel.events import Step
    from darkroom.worker.handlers import BUILTIN
    from darkroom.worker.jobs import projects
    from tests.jobtypes import JOB_TYPES

    monkeypatch.setattr(projects, "QUIET_WAIT_S", 0.0)  # the rename goes on while the task's first step runs

    slow_check = TaskDefinition(
        label="Slow check",
        user_relevant=True,
        steps=[Step("sleep", 90), Step("manifest_check", 95), Step("folder_check", 95)],
    )
    await system.start(job_types=BUILTIN | JOB_TYPES, definitions=load_definitions() | {"slow_check": slow_check})
    await shoot(system, "Early", _jpgs(1))
    status, body, _ = await system.request("POST", "/api/projects/Early/tasks", {"type": "slow_check", "items": ["3"]})
    assert status == 202, body
    checking = body["task"]["id"]
    await system.wait_job(checking, 0, "running")
    status, renaming, _ = await system.request("PATCH", "/api/projects/Early", {"name": "Late"})
    await _done(system, status, renaming)
    assert (await system.task(checking))["task"]["step_index"] == 0  # renamed while its first step ran
    view = await system.wait_task(checking, timeout=30)
    assert view["task"]["status"] == "completed", view  # its later steps found the folder where it is now
    assert not (system.data_dir / "projects" / "Early").exists()


def test_a_late_derivative_never_makes_a_renamed_folder_again(tmp_path: Path) -> None:
    from darkroom.kernel.config import ProcessingConfig
    from darkroom.worker.derivations import spec_of
    from darkroom.worker.imaging import make_derivatives

    source = tmp_path / "landscape_1.jpg"
    source.write_bytes(_jpgs(1)[0][1])
    gone = tmp_path / "renamed away"
    try:
        make_derivatives(
            str(source), str(gone / ".thumb" / "a.webp"), str(gone / ".preview" / "a.jpg"), spec_of(ProcessingConfig())
        )
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("derivatives were written into a folder that is not there")
    assert not gone.exists()
