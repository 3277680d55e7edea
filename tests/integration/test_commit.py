"""Culling on real folders: commit, revert, reconciliation, trash, restore, the schedule."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

from PIL import Image

from darkroom.kernel.clock import parse_iso
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.lease import Leases
from darkroom.orchestrator.schedule import slot_of
from darkroom.worker.handlers import BUILTIN
from tests.conftest import SSEClient, System, create_project, eventually, photo_bytes, shoot, upload

JPEG = "cameras/Canon_40D.jpg"


async def _start(system: System, **settings):
    """The shipped task definitions and job handlers, as `darkroom up` runs them."""
    settings.setdefault("job_types", BUILTIN)
    return await system.start(definitions=load_definitions(), **settings)


async def _photos(system: System, folder: str) -> dict[str, dict]:
    _, body, _ = await system.request("GET", f"/api/projects/{folder}/photos?limit=1000")
    return {p["filename"]: p for p in body["photos"]}


async def _keep(system: System, folder: str, **flags) -> None:
    updates = [{"filename": name, **value} for name, value in flags.items()]
    status, body, _ = await system.request("PUT", f"/api/projects/{folder}/keep", {"updates": updates})
    assert status == 200, body


async def _commit(system: System, folder: str) -> dict:
    status, body, _ = await system.request("POST", f"/api/projects/{folder}/commit-changes")
    assert status == 202, body
    return body


async def test_commit_trashes_the_unkept_jpg_keeps_the_raw_and_tells_the_ui(system: System) -> None:
    await _start(system)
    jpeg, raw = photo_bytes(JPEG), b"RAWDATA" * 500
    project, folder = await shoot(
        system,
        "Cull",
        [
            ("DSC01.JPG", jpeg),
            ("DSC01.ARW", raw),
            ("DSC02.JPG", photo_bytes("cameras/Nikon_D70.jpg")),
            ("DSC02.ARW", raw + b"2"),
        ],
    )
    assert (folder / ".thumb" / "DSC01.webp").exists()
    async with SSEClient(system.http, f"{system.url}/api/events?project={project['folder']}") as client:
        await _keep(system, project["folder"], DSC01={"keep_jpg": False}, DSC02={"keep_jpg": False, "keep_raw": False})
        status, body, _ = await system.request("GET", f"/api/projects/{project['folder']}")
        assert body["counts"]["pending_photos"] == 2 and body["counts"]["pending_jpg"] == 2
        commit = await _commit(system, project["folder"])
        assert commit["pending"] == {"photos": 2, "jpg": 2, "raw": 1, "other": 0}
        view = await system.wait_task(commit["task_id"], timeout=30)
        # The JPG was the derivatives' source: they are made again from the RAW left, whose bytes here
        # hold no embedded preview.
        remade = await client.wait_for(
            lambda m: (
                m[1] == "item"
                and m[2]["photo"]["filename"] == "DSC01"
                and m[2]["photo"]["thumbnail_status"] == "not_supported"
            ),
            what="DSC01 remade from its RAW",
        )
        removed = await client.wait_for(lambda m: m[1] == "item_removed", what="DSC02 removed")
    assert view["task"]["status"] == "completed"
    assert [j["type"] for j in view["jobs"]] == ["file_removal", "manifest_check", "folder_check", "manifest_cleaning"]
    assert all(j["status"] == "completed" for j in view["jobs"])
    assert (folder / ".trash" / "DSC01.JPG").read_bytes() == jpeg  # identical bytes, recoverable
    assert not (folder / "DSC01.JPG").exists() and (folder / "DSC01.ARW").read_bytes() == raw
    assert not (folder / ".thumb" / "DSC01.webp").exists() and not (folder / ".preview" / "DSC01.jpg").exists()
    assert remade[2]["photo"]["preview_status"] == "not_supported" and remade[2]["photo"]["files"] == ["DSC01.ARW"]
    assert removed[2]["filename"] == "DSC02"
    photos = await _photos(system, project["folder"])
    assert set(photos) == {"DSC01"}
    assert photos["DSC01"]["thumbnail_status"] == "not_supported" and not photos["DSC01"]["jpg_available"]
    assert photos["DSC01"]["keep_raw"] and photos["DSC01"]["raw_available"]
    events = [e for _, _, e in await system.log(f"darkroom.job.{project['project_id']}.{commit['task_id']}.>")]
    assert events and all(
        e["source"] == "user" and e["task_id"] == commit["task_id"] and e["task_type"] == "change_commit"
        for e in events
    )
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/commit-changes")
    assert status == 200 and body["task_id"] is None  # nothing pending: nothing to do


async def test_a_revert_before_the_removal_step_runs_means_nothing_is_removed(system: System) -> None:
    await _start(system, roles=("projector", "orchestrator", "api"))
    worker = await _start(system, roles=("worker",))
    project, folder = await shoot(system, "Revert", [("R1.jpg", photo_bytes(JPEG))])
    await worker.stop()
    await _keep(system, project["folder"], R1={"keep_jpg": False})
    commit = await _commit(system, project["folder"])
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/revert-changes")
    assert status == 200 and body["updated"] == 1
    await _start(system, roles=("worker",))
    view = await system.wait_task(commit["task_id"], timeout=30)
    assert view["task"]["status"] == "completed"
    assert (folder / "R1.jpg").exists() and not (folder / ".trash").exists()
    assert (await _photos(system, project["folder"]))["R1"]["keep_jpg"] is True


async def test_a_jpg_copied_in_beside_a_raw_alone_gets_its_derivatives(system: System) -> None:
    await _start(system)
    project, folder = await shoot(system, "Beside", [("B1.ARW", b"RAWDATA" * 500), ("B2.jpg", photo_bytes(JPEG))])
    before = await _photos(system, project["folder"])
    assert before["B1"]["thumbnail_status"] == "not_supported" and before["B2"]["thumbnail_status"] == "generated"
    (folder / "B1.JPG").write_bytes(photo_bytes("cameras/Pentax_K10D.jpg"))  # the camera's JPG, copied in by hand
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/tasks", {"type": "maintenance"})
    assert status == 202, body
    assert (await system.wait_task(body["task"]["id"], timeout=30))["task"]["status"] == "completed"

    async def derived():
        b1 = (await _photos(system, project["folder"]))["B1"]
        return b1 if b1["thumbnail_status"] == "generated" else None

    b1 = await eventually(derived, 30, "B1 to get derivatives from the JPG beside its RAW")
    assert b1["jpg_available"] and b1["raw_available"] and b1["keep_jpg"] and b1["keep_raw"]
    assert b1["model"] == "PENTAX K10D" and b1["preview_status"] == "generated"
    assert (folder / ".thumb" / "B1.webp").exists()
    tasks = (await system.request("GET", f"/api/projects/{project['folder']}/tasks"))[1]["tasks"]
    assert [t["type"] for t in tasks].count("upload_postprocess") == 2  # the upload's, and one for B1
    assert (await _photos(system, project["folder"]))["B2"]["updated_at"] == before["B2"]["updated_at"]


async def test_reconciliation_adopts_what_appears_and_leaves_other_files_alone(system: System) -> None:
    await _start(system)
    project, folder = await shoot(
        system,
        "Disk",
        [
            ("D1.jpg", photo_bytes(JPEG)),
            ("D2.jpg", photo_bytes(JPEG)),
            ("D3.jpg", photo_bytes("cameras/Nikon_D70.jpg")),
        ],
    )
    (folder / "D1.NEF").write_bytes(b"raw by hand")  # a RAW copied in by hand
    (folder / "D9.JPG").write_bytes(photo_bytes("cameras/Pentax_K10D.jpg"))  # a new photo by hand
    (folder / "D2.jpg").unlink()  # deleted by hand
    (folder / "D3.xmp").write_bytes(b"<xmp/>")
    (folder / "clip.mov").write_bytes(b"video")
    (folder / ".DS_Store").write_bytes(b"finder")
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/tasks", {"type": "maintenance"})
    assert status == 202 and body["task"]["source"] == "user"
    view = await system.wait_task(body["task"]["id"], timeout=30)
    assert view["task"]["status"] == "completed"

    async def adopted():
        photos = await _photos(system, project["folder"])
        d9 = photos.get("D9")
        return photos if d9 and d9["thumbnail_status"] == "generated" else None

    photos = await eventually(adopted, 30, "D9 to be adopted with its derivatives")
    assert photos["D1"]["raw_available"] and photos["D1"]["keep_raw"]  # found, kept, not pending
    assert "D2" not in photos  # reconciled away: its only file is gone
    assert photos["D9"]["model"] == "PENTAX K10D"
    _, project_view, _ = await system.request("GET", f"/api/projects/{project['folder']}")
    assert project_view["counts"]["pending_photos"] == 0
    assert {p.name for p in folder.iterdir()} >= {"D3.xmp", "clip.mov", ".DS_Store", "D1.NEF"}
    assert (folder / "clip.mov").read_bytes() == b"video" and not (folder / ".trash").exists()
    children = [
        t
        for t in (await system.request("GET", f"/api/projects/{project['folder']}/tasks"))[1]["tasks"]
        if t["type"] == "upload_postprocess"
    ]
    assert any(t["source"] == "user" for t in children)  # folder_check's task carries its parent's source


async def test_trash_ttl_counts_from_trashing_and_restore_brings_photos_back(system: System) -> None:
    await _start(system, maintenance__trash_ttl_s=3600)
    project, folder = await shoot(
        system,
        "Trash",
        [("T1.jpg", photo_bytes(JPEG)), ("T2.ARW", b"raw" * 99), ("T2.jpg", photo_bytes("cameras/Nikon_D70.jpg"))],
    )
    (folder / "T2.ARW.xmp").write_bytes(b"<xmp>rating 5</xmp>")
    long_ago = time.time() - 30 * 86400
    os.utime(folder / "T1.jpg", (long_ago, long_ago))  # uploaded long ago
    await _keep(system, project["folder"], T1={"keep_jpg": False}, T2={"keep_raw": False})
    await system.wait_task((await _commit(system, project["folder"]))["task_id"], timeout=30)
    assert (folder / ".trash" / "T2.ARW.xmp").exists() and not (folder / "T2.ARW.xmp").exists()
    sweep = await system.request("POST", f"/api/projects/{project['folder']}/tasks", {"type": "maintenance"})
    await system.wait_task(sweep[1]["task"]["id"], timeout=30)
    assert (folder / ".trash" / "T1.jpg").exists()  # trashed just now: the TTL runs from now
    _, trash, _ = await system.request("GET", f"/api/projects/{project['folder']}/trash")
    entries = {e["name"]: e for e in trash["trash"]}
    assert set(entries) == {"T1.jpg", "T2.ARW", "T2.ARW.xmp"}
    ttl = (parse_iso(entries["T1.jpg"]["expires_at"]) - parse_iso(entries["T1.jpg"]["trashed_at"])).total_seconds()
    assert ttl == 3600 and abs(parse_iso(entries["T1.jpg"]["trashed_at"]).timestamp() - time.time()) < 60
    status, body, _ = await system.request(
        "POST", f"/api/projects/{project['folder']}/trash/restore", {"names": ["T1.jpg", "T2.ARW"]}
    )
    assert status == 200 and sorted(body["restored"]) == ["T1.jpg", "T2.ARW", "T2.ARW.xmp"]
    restore = await system.wait_task(body["task_id"], timeout=30)
    assert restore["task"]["label"] == "Restore from trash"  # not "Upload Post-Process": what the user did
    assert (folder / "T2.ARW.xmp").read_bytes() == b"<xmp>rating 5</xmp>"  # the sidecar came back with its RAW
    photos = await _photos(system, project["folder"])
    assert photos["T1"]["keep_jpg"] and photos["T1"]["thumbnail_status"] == "generated"
    assert (folder / ".thumb" / "T1.webp").exists()
    assert photos["T2"]["raw_available"] and photos["T2"]["keep_raw"]
    status, body, _ = await system.request(
        "POST", f"/api/projects/{project['folder']}/trash/restore", {"names": ["nope.jpg"]}
    )
    assert status == 404


async def test_trash_older_than_its_ttl_is_purged_and_nothing_younger(system: System) -> None:
    await _start(system, maintenance__trash_ttl_s=1.5)
    project, folder = await shoot(system, "Purge", [("P1.jpg", photo_bytes(JPEG)), ("P2.jpg", photo_bytes(JPEG))])
    await _keep(system, project["folder"], P1={"keep_jpg": False})
    await system.wait_task((await _commit(system, project["folder"]))["task_id"], timeout=30)
    await asyncio.sleep(1.6)  # let P1's trash entry age past its TTL (time itself is the input here)
    await _keep(system, project["folder"], P2={"keep_jpg": False})
    await system.wait_task((await _commit(system, project["folder"]))["task_id"], timeout=30)
    sweep = await system.request("POST", f"/api/projects/{project['folder']}/tasks", {"type": "maintenance"})
    await system.wait_task(sweep[1]["task"]["id"], timeout=30)
    assert not (folder / ".trash" / "P1.jpg").exists() and (folder / ".trash" / "P2.jpg").exists()
    _, trash, _ = await system.request("GET", f"/api/projects/{project['folder']}/trash")
    assert [e["name"] for e in trash["trash"]] == ["P2.jpg"]


async def test_a_commit_during_derivative_generation_ends_consistent(system: System, tmp_path) -> None:
    await _start(system)
    big = tmp_path / "big.jpg"
    Image.effect_noise((6000, 4000), 64).convert("RGB").save(big, quality=90)
    project = await create_project(system, "Race")
    status, body = await upload(system, project["folder"], [("BIG.jpg", big.read_bytes()), ("BIG.CR3", b"raw" * 50)])
    await system.wait_job(body["task_id"], 0, "running")
    await _keep(system, project["folder"], BIG={"keep_jpg": False})
    commit = await _commit(system, project["folder"])
    await system.wait_task(commit["task_id"], timeout=60)
    await system.wait_task(body["task_id"], timeout=60)
    folder = system.data_dir / "projects" / project["folder"]
    assert (folder / ".trash" / "BIG.jpg").exists()
    assert not (folder / ".thumb" / "BIG.webp").exists() and not (folder / ".preview" / "BIG.jpg").exists()
    photo = (await _photos(system, project["folder"]))["BIG"]
    # Made again from the RAW left, whose bytes here hold no embedded preview.
    assert photo["thumbnail_status"] == photo["preview_status"] == "not_supported"
    assert photo["files"] == ["BIG.CR3"] and not photo["jpg_available"]


async def test_an_upload_during_a_long_maintenance_sweep_starts_at_once(system: System) -> None:
    runtime = await _start(system)
    busy, _ = await shoot(system, "Busy", [("B1.jpg", photo_bytes(JPEG))])
    other = await create_project(system, "Other")
    leases = Leases(runtime.buses["worker"], "test")
    async with leases.hold(busy["project_id"], "a long sweep"):
        status, sweep, _ = await system.request(
            "POST", f"/api/projects/{busy['folder']}/tasks", {"type": "maintenance"}
        )
        await system.wait_job(sweep["task"]["id"], 0, "running")  # holds the normal-first slot, waiting
        status, body = await upload(system, other["folder"], [("O1.jpg", photo_bytes(JPEG))])
        job = await system.wait_job(body["task_id"], 0, "running", "completed", timeout=5)
        assert job["lane"] == "priority"
        assert (parse_iso(job["started_at"]) - parse_iso(job["created_at"])).total_seconds() < 0.5
        sweep_job = (await system.task(sweep["task"]["id"]))["jobs"][0]
        assert sweep_job["lane"] == "normal" and sweep_job["status"] == "running"
    await system.wait_task(sweep["task"]["id"], timeout=30)


async def test_the_schedule_runs_maintenance_once_per_project_and_interval(system: System) -> None:
    await _start(system, maintenance__interval_s=1.0)
    await _start(system, roles=("orchestrator",), orchestrator_name="orchestrator_b", maintenance__interval_s=1.0)
    a = await create_project(system, "Sched A")
    b = await create_project(system, "Sched B")

    async def swept():
        _, body, _ = await system.request("GET", "/api/tasks?show_maintenance=true&type=maintenance&status=completed")
        done = {t["project_id"] for t in body["tasks"]}
        return body["tasks"] if {a["project_id"], b["project_id"]} <= done else None

    tasks = await eventually(swept, 20, "scheduled maintenance of both projects")
    assert all(t["source"] == "maintenance" and t["maintenance"] for t in tasks)
    _, hidden, _ = await system.request("GET", "/api/tasks?type=maintenance")
    assert hidden["tasks"] == []
    _, jobs, _ = await system.request("GET", f"/api/projects/{a['folder']}/jobs?show_maintenance=true")
    assert jobs["jobs"] and all(j["lane"] == "normal" for j in jobs["jobs"])
    _, jobs, _ = await system.request("GET", f"/api/projects/{a['folder']}/jobs")
    assert jobs["jobs"] == []
    requested = [e for _, _, e in await system.log("darkroom.task.*.*.requested") if e["source"] == "maintenance"]
    per_slot = Counter((e["project_id"], slot_of(parse_iso(e["at"]).timestamp(), 1.0)) for e in requested)
    assert max(per_slot.values()) == 1  # two orchestrators, still one task per project per interval


async def test_a_file_that_cannot_be_moved_fails_visibly_and_leaves_its_record(system: System) -> None:
    await _start(system)
    project, folder = await shoot(system, "Stuck", [("S1.jpg", photo_bytes(JPEG))])
    (folder / ".trash").write_text("not a folder")  # the trash cannot be made: the move fails
    await _keep(system, project["folder"], S1={"keep_jpg": False})
    view = await system.wait_task((await _commit(system, project["folder"]))["task_id"], timeout=30)
    assert view["task"]["status"] == "failed"
    assert "could not move to the trash: S1" in view["jobs"][0]["error"]
    assert (folder / "S1.jpg").exists()
    photo = (await _photos(system, project["folder"]))["S1"]
    assert photo["jpg_available"] and photo["thumbnail_status"] == "generated" and not photo["keep_jpg"]
    (folder / ".trash").unlink()
    view = await system.wait_task((await _commit(system, project["folder"]))["task_id"], timeout=30)
    assert view["task"]["status"] == "completed" and (folder / ".trash" / "S1.jpg").exists()
    # Running the commit's steps again changes nothing.
    before = sorted(p.name for p in folder.rglob("*"))
    status, body, _ = await system.request(
        "POST", f"/api/projects/{project['folder']}/tasks", {"type": "change_commit"}
    )
    assert (await system.wait_task(body["task"]["id"], timeout=30))["task"]["status"] == "completed"
    assert sorted(p.name for p in folder.rglob("*")) == before
