"""`darkroom audit`: a task's, a photo's and a project's history, read from the log."""

from __future__ import annotations

import asyncio
import json

from darkroom.kernel.definitions import load_definitions
from darkroom.worker.handlers import BUILTIN
from tests.conftest import System, cli_env, create_project, darkroom_cli, photo_bytes, upload


async def _audit(system: System, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("audit", *args, "--nats", system.server.url, "--data", str(system.data_dir)),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def _json(system: System, *args: str) -> list[dict]:
    code, out, err = await _audit(system, *args, "--json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


async def _culled_shoot(system: System) -> tuple[dict, str, str]:
    """An upload of a JPG+RAW pair and a lone JPG, then a commit that drops the pair's JPG."""
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    project = await create_project(system, "Audit Shoot")
    status, body = await upload(
        system,
        project["folder"],
        [
            ("DSC01.JPG", photo_bytes("cameras/Canon_40D.jpg")),
            ("DSC01.ARW", b"RAW" * 1000),
            ("DSC02.JPG", photo_bytes("cameras/Nikon_D70.jpg")),
        ],
    )
    assert status == 201, body
    uploaded = body["task_id"]
    assert (await system.wait_task(uploaded, timeout=30))["task"]["status"] == "completed"
    status, body, _ = await system.request(
        "PUT", f"/api/projects/{project['folder']}/keep", {"updates": [{"filename": "DSC01", "keep_jpg": False}]}
    )
    assert status == 200, body
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/commit-changes")
    assert status == 202, body
    committed = body["task_id"]
    assert (await system.wait_task(committed, timeout=30))["task"]["status"] == "completed"
    return project, uploaded, committed


def _types(lines: list[dict]) -> list[str]:
    return [line["type"] for line in lines]


async def test_audit_photo_shows_the_whole_life_of_a_photo_in_order(system: System) -> None:
    project, uploaded, committed = await _culled_shoot(system)
    lines = await _json(system, "photo", project["folder"], "DSC01")
    assert _types(lines) == [
        "photo.file_added",
        "photo.file_added",
        "photo.derivatives_updated",
        "photo.keep_changed",
        "photo.files_trashed",
        "photo.derivatives_updated",
        "photo.derivatives_updated",
    ]
    assert [line["name"] for line in lines[:2]] == ["DSC01.JPG", "DSC01.ARW"]
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
    assert {line["filename"] for line in lines} == {"DSC01"}
    assert {line["project_id"] for line in lines} == {project["project_id"]}
    assert all(line["subject"].startswith(f"darkroom.photo.{project['project_id']}.") for line in lines)
    # Each line is the event as stored, plus where it is stored.
    assert list(lines[0])[:4] == ["seq", "subject", "id", "type"] and lines[0]["v"] == 1
    derived, cleared, remade = lines[2], lines[5], lines[6]
    assert (derived["thumbnail_status"], derived["preview_status"], derived["task_id"]) == (
        "generated",
        "generated",
        uploaded,
    )
    assert derived["metadata"]["model"] == "Canon EOS 40D"  # read while the derivatives were made
    assert lines[3]["keep_jpg"] is False and lines[3]["source"] == "user"
    assert lines[4]["names"] == ["DSC01.JPG"] and lines[4]["task_id"] == committed
    # The JPG was the source: the photo is made again from its RAW, whose bytes here hold no preview.
    assert (cleared["thumbnail_status"], cleared["task_id"]) == ("pending", committed)
    assert (remade["thumbnail_status"], remade["made_from"], remade["task_id"]) == (
        "not_supported",
        "DSC01.ARW",
        committed,
    )
    # A file name of the photo finds it too; another photo's events are not mixed in.
    assert await _json(system, "photo", project["folder"], "DSC01.JPG") == lines
    assert _types(await _json(system, "photo", project["folder"], "DSC02")) == [
        "photo.file_added",
        "photo.derivatives_updated",
    ]

    code, out, err = await _audit(system, "photo", project["folder"], "DSC01")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["SEQ", "TIME", "TYPE", "SOURCE", "TASK", "JOB", "DETAIL"]
    assert [r.split()[2] for r in rows] == _types(lines)
    assert [int(r.split()[0]) for r in rows] == [line["seq"] for line in lines]
    assert rows[0].split()[1] == lines[0]["at"]
    assert "DSC01: DSC01.JPG (jpg," in rows[0] and "DSC01: DSC01.ARW (raw, 3000 bytes)" in rows[1]
    assert "thumbnail generated, preview generated" in rows[2] and "Canon EOS 40D" in rows[2]
    assert "keep_jpg no" in rows[3] and "DSC01.JPG to the trash" in rows[4]
    assert f"{committed}-0" in rows[4] and "thumbnail pending, preview pending" in rows[5]
    assert "thumbnail not_supported, preview not_supported" in rows[6]


async def test_audit_task_shows_every_step_requested_and_completed_where_and_when_it_ran(system: System) -> None:
    project, uploaded, committed = await _culled_shoot(system)
    for task_id, steps in (
        (uploaded, ["upload_postprocess", "manifest_check", "folder_check"]),
        (committed, ["file_removal", "manifest_check", "folder_check", "manifest_cleaning"]),
    ):
        lines = await _json(system, "task", task_id)
        assert {line["task_id"] for line in lines} == {task_id}
        assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
        lifecycle = [t for t in _types(lines) if t.startswith("task.")]
        assert lifecycle == ["task.requested", "task.completed"]  # running from its first job.requested
        assert _types(lines)[:2] == ["task.requested", "job.requested"]
        assert _types(lines)[-1] == "task.completed"
        jobs = [
            (line["step_index"], line["job_type"], line["type"])
            for line in lines
            if line["type"] in ("job.requested", "job.completed")
        ]
        assert jobs == [(i, step, kind) for i, step in enumerate(steps) for kind in ("job.requested", "job.completed")]
        # Each outcome says when and where its attempt started, job.started stored or not (§7.1).
        assert all(line["started_at"] and line["worker"] for line in lines if line["type"] == "job.completed")
        assert all(
            line["job_id"] == f"{task_id}-{line['step_index']}" for line in lines if line["type"].startswith("job.")
        )

    code, out, err = await _audit(system, "task", committed)
    assert code == 0, err
    rows = out.splitlines()[1:]
    assert rows[0].split()[2:5] == ["task.requested", "user", committed]
    assert "change_commit: file_removal → manifest_check → folder_check → manifest_cleaning" in rows[0]
    completed = next(r for r in rows if r.split()[2] == "job.completed")
    assert f"{committed}-0" in completed and "step 0 file_removal, attempt 1 on" in completed
    assert rows[-1].split()[2] == "task.completed"


async def test_audit_project_shows_its_photos_and_tasks_without_per_attempt_noise(system: System) -> None:
    project, uploaded, committed = await _culled_shoot(system)
    lines = await _json(system, "project", project["folder"])
    types = _types(lines)
    assert types[0] == "project.created" and lines[0]["folder"] == project["folder"]
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
    assert {line["project_id"] for line in lines} == {project["project_id"]}
    assert {line["task_id"] for line in lines if line["type"] == "task.completed"} == {uploaded, committed}
    assert types.count("photo.file_added") == 3 and "photo.files_trashed" in types
    assert types.count("job.requested") == types.count("job.completed") == 7
    assert not {"job.started", "job.progress"} & set(types)
    photo = await _json(system, "photo", project["folder"], "DSC01")
    assert [line for line in lines if line["subject"] in {p["subject"] for p in photo}] == photo


async def test_audit_of_something_unknown_exits_2_naming_it(system: System) -> None:
    await system.start()
    project = await create_project(system, "Known")
    for args, words in (
        (("task", "01NOSUCHTASK0000000000000"), "no task '01NOSUCHTASK0000000000000'"),
        (("task", "a.b"), "no task 'a.b'"),
        (("photo", project["folder"], "GHOST"), "no photo 'GHOST' in project 'Known'"),
        (("photo", "Nowhere", "GHOST"), "no project with folder 'Nowhere'"),
        (("project", "Nowhere"), "no project with folder 'Nowhere'"),
    ):
        code, out, err = await _audit(system, *args)
        assert (code, out) == (2, ""), (args, out, err)
        assert words in err, (args, err)
    lines = await _json(system, "project", "Known")
    assert _types(lines) == ["project.created", "project.manifest_written"]
