"""Derivatives that heal: each maintenance run remakes what is stuck or wrong, on real folders."""

from __future__ import annotations

import io
import os
import time

from PIL import Image

from darkroom.kernel.definitions import load_definitions
from darkroom.worker.handlers import BUILTIN
from tests.conftest import (
    PHOTOS,
    System,
    create_project,
    eventually,
    photo_bytes,
    photos_of,
    shoot,
    start_shipped,
    upload,
)
from tests.jobtypes import DEFINITIONS, JOB_TYPES


async def _thumbnail(system: System, folder: str, filename: str) -> tuple[int, bytes]:
    async with system.http.get(f"{system.url}/api/projects/{folder}/thumbnail/{filename}") as response:
        return response.status, await response.read()


async def _maintenance(system: System, folder: str) -> dict:
    status, body, _ = await system.request("POST", f"/api/projects/{folder}/tasks", {"type": "maintenance"})
    assert status == 202, body
    view = await system.wait_task(body["task"]["id"], timeout=60)
    assert view["task"]["status"] == "completed", view
    return view


async def _generated(system: System, folder: str, *filenames: str) -> dict[str, dict]:
    """The photos, once each named one is `generated` (a maintenance run may leave the work to a task it starts)."""

    async def check():
        photos = await photos_of(system, folder)
        return photos if all(photos[f]["thumbnail_status"] == "generated" for f in filenames) else None

    return await eventually(check, 30, f"{', '.join(filenames)} to be generated")


async def _derivative_reports(system: System, project_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, _, event in await system.log(f"darkroom.photo.{project_id}.*.derivatives_updated"):
        counts[event["filename"]] = counts.get(event["filename"], 0) + 1
    return counts


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


async def test_a_canceled_upload_ends_with_every_photo_generated_after_the_next_maintenance(system: System) -> None:
    # One job slot, held by a long job: the upload's files land (the image processes make their thumbnails as
    # they do), and its job waits; the upload is canceled there, as a photographer would cancel one.
    await system.start(
        job_types=BUILTIN | JOB_TYPES,
        definitions=load_definitions() | DEFINITIONS,
        pipeline__max_parallel_jobs=1,
        pipeline__priority_lane_slots=0,
    )
    project = await create_project(system, "Canceled")
    folder = system.data_dir / "projects" / project["folder"]
    blocker = await system.start_task("long_priority", ["3"])
    await system.wait_job(blocker["id"], 0, "running")
    files = sorted((PHOTOS / "orientation").glob("*.jpg"))[:8] + sorted((PHOTOS / "cameras").glob("*.jpg"))
    status, body = await upload(system, project["folder"], [(f.name, f.read_bytes()) for f in files])
    assert status == 201 and len(body["files"]) == len(files), body
    await system.wait_job(body["task_id"], 0, "queued")
    status, _, _ = await system.request("POST", f"/api/tasks/{body['task_id']}/cancel")
    assert status == 202
    assert (await system.wait_task(body["task_id"]))["task"]["status"] == "canceled"
    await system.wait_task(blocker["id"])
    photos = await photos_of(system, project["folder"])
    assert {p["thumbnail_status"] for p in photos.values()} == {"pending"}  # what the user saw spin

    status, again = await upload(system, project["folder"], [(files[0].name, files[0].read_bytes())])
    assert status == 201 and again["skipped"] and again["task_id"] is None  # re-uploading changes nothing
    await _maintenance(system, project["folder"])
    photos = await _generated(system, project["folder"], *(f.stem for f in files))
    assert all(p["preview_status"] == "generated" and p["width"] for p in photos.values())
    for f in files:
        status, data = await _thumbnail(system, project["folder"], f.stem)
        assert status == 200 and data == (folder / ".thumb" / f"{f.stem}.webp").read_bytes()


async def test_a_deleted_thumbnail_is_remade_and_nothing_else_is(system: System) -> None:
    await start_shipped(system)
    project, folder = await shoot(
        system,
        "Deleted",
        [("D1.jpg", photo_bytes("orientation/landscape_1.jpg")), ("D2.jpg", photo_bytes("cameras/Canon_40D.jpg"))],
    )
    (folder / ".thumb" / "D1.webp").unlink()  # deleted by hand
    before = await photos_of(system, project["folder"])
    assert before["D1"]["thumbnail_status"] == "generated"
    assert (await _thumbnail(system, project["folder"], "D1"))[0] == 404
    reports = await _derivative_reports(system, project["project_id"])

    await _maintenance(system, project["folder"])
    status, data = await _thumbnail(system, project["folder"], "D1")
    assert status == 200 and _size(data) == (600, 450)
    after = await photos_of(system, project["folder"])
    assert after["D1"]["thumbnail_status"] == "generated" and after["D1"]["made_from"] == "D1.jpg"
    assert after["D2"] == before["D2"]  # right all along: not made again
    assert await _derivative_reports(system, project["project_id"]) == reports | {"D1": reports["D1"] + 1}
    await _maintenance(system, project["folder"])  # healed once: the next run finds nothing to do
    assert await _derivative_reports(system, project["project_id"]) == reports | {"D1": reports["D1"] + 1}


async def test_a_jpg_and_png_photo_shows_the_png_once_the_jpg_is_committed_away(system: System) -> None:
    await start_shipped(system)
    project, _ = await shoot(
        system,
        "Pair",
        [("P1.jpg", photo_bytes("orientation/landscape_1.jpg")), ("P1.png", _png((300, 500), (200, 40, 40)))],
    )
    assert _size((await _thumbnail(system, project["folder"], "P1"))[1]) == (600, 450)  # from the JPG
    status, body, _ = await system.request(
        "PUT", f"/api/projects/{project['folder']}/keep", {"updates": [{"filename": "P1", "keep_jpg": False}]}
    )
    status, commit, _ = await system.request("POST", f"/api/projects/{project['folder']}/commit-changes")
    assert status == 202, commit
    assert (await system.wait_task(commit["task_id"], timeout=30))["task"]["status"] == "completed"

    status, data = await _thumbnail(system, project["folder"], "P1")
    assert status == 200 and _size(data) == (300, 500)
    assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((150, 250))[0] > 150  # the PNG's red
    photo = (await photos_of(system, project["folder"]))["P1"]
    assert photo["thumbnail_status"] == photo["preview_status"] == "generated"
    assert photo["files"] == ["P1.png"] and photo["made_from"] == "P1.png"


async def test_a_jpg_deleted_by_hand_beside_its_png_leaves_the_png_thumbnail(system: System) -> None:
    await start_shipped(system)
    project, folder = await shoot(
        system,
        "By hand",
        [("H1.jpg", photo_bytes("orientation/landscape_1.jpg")), ("H1.png", _png((300, 500), (40, 40, 200)))],
    )
    (folder / "H1.jpg").unlink()
    await _maintenance(system, project["folder"])
    photo = (await _generated(system, project["folder"], "H1"))["H1"]
    assert _size((await _thumbnail(system, project["folder"], "H1"))[1]) == (300, 500)
    assert photo["files"] == ["H1.png"] and photo["made_from"] == "H1.png"


async def test_a_file_replaced_by_hand_under_the_same_name_is_noticed(system: System) -> None:
    await start_shipped(system)
    project, folder = await shoot(system, "Replaced", [("R1.jpg", photo_bytes("orientation/landscape_1.jpg"))])
    source = folder / "R1.jpg"
    source.write_bytes(photo_bytes("orientation/portrait_1.jpg"))
    long_ago = time.time() - 30 * 86400
    os.utime(source, (long_ago, long_ago))  # copied as `cp -p` does: older than the thumbnail
    await _maintenance(system, project["folder"])
    status, data = await _thumbnail(system, project["folder"], "R1")
    assert status == 200 and _size(data) == (450, 600)


async def test_a_failure_that_passed_is_healed_and_an_unreadable_file_is_not_tried_again(system: System) -> None:
    await start_shipped(system)
    project = await create_project(system, "Failures")
    folder = system.data_dir / "projects" / project["folder"]
    (folder / ".thumb").write_text("in the way")  # the thumbnails' folder cannot be made: a cause that can pass
    status, body = await upload(
        system,
        project["folder"],
        [("F1.jpg", photo_bytes("orientation/landscape_1.jpg")), ("F2.jpg", b"\xff\xd8\xff" + b"not a picture" * 50)],
    )
    assert (await system.wait_task(body["task_id"], timeout=30))["task"]["status"] == "completed"
    failed = await photos_of(system, project["folder"])
    assert failed["F1"]["thumbnail_status"] == failed["F2"]["thumbnail_status"] == "failed"
    (folder / ".thumb").unlink()
    reports = await _derivative_reports(system, project["project_id"])

    await _maintenance(system, project["folder"])
    photos = await photos_of(system, project["folder"])
    assert photos["F1"]["thumbnail_status"] == "generated"
    assert (await _thumbnail(system, project["folder"], "F1"))[0] == 200
    assert photos["F2"]["thumbnail_status"] == "failed"
    assert (await _derivative_reports(system, project["project_id"]))["F2"] == reports["F2"]  # not tried again
    assert (failed["F1"]["error_kind"], failed["F2"]["error_kind"]) == ("io_error", "unreadable")
    assert photos["F1"]["error_kind"] is None


async def test_maintenance_removes_upload_part_files_untouched_for_an_hour(system: System) -> None:
    await start_shipped(system)
    project = await create_project(system, "Parts")
    folder = system.data_dir / "projects" / project["folder"]
    stale, fresh = folder / ".upload-01HZXSTALE.part", folder / ".upload-01HZXFRESH.part"
    for part in (stale, fresh):
        part.write_bytes(b"half a photo")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))  # an upload killed half-way, two hours ago
    await _maintenance(system, project["folder"])
    assert not stale.exists() and fresh.read_bytes() == b"half a photo"  # an upload may still be writing that
