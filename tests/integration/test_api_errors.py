"""Every error is an answer: JSON `{"error"}` with the right status, whatever the request did wrong."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json

import msgspec
from nats.js.api import DiscardPolicy

from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.folders import projects_root
from darkroom.worker.handlers import BUILTIN
from tests.conftest import System, create_project, photo_bytes, upload


async def raw_request(system: System, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request written byte for byte (headers a client library would refuse to send)."""
    host, port = system.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            head + b"\r\nHost: x\r\nConnection: close\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head_part, _, payload = answer.partition(b"\r\n\r\n")
    status_line, *lines = head_part.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, payload


def json_error(headers: dict, payload: bytes) -> str:
    assert headers["content-type"].startswith("application/json"), (headers, payload)
    body = json.loads(payload)
    assert set(body) == {"error"} and body["error"], body
    return body["error"]


async def test_a_wrong_method_is_a_405_in_json_naming_the_allowed_ones(system: System) -> None:
    await system.start()
    project = await create_project(system, "Methods")
    for method in ("PUT", "POST"):  # a project is read, renamed (PATCH) and deleted (DELETE) there
        status, headers, payload = await raw_request(
            system, f"{method} /api/projects/{project['folder']} HTTP/1.1".encode(), b'{"name": "New"}'
        )
        assert status == 405, payload
        assert "GET" in json_error(headers, payload) and "PATCH" in headers["allow"] and "DELETE" in headers["allow"]
    status, body, _ = await system.request("GET", f"/api/projects/{project['folder']}")
    assert status == 200 and body["project"]["name"] == "Methods"


async def test_a_json_body_over_1_mib_is_a_413_in_json(system: System) -> None:
    await system.start()
    body = json.dumps({"name": "x" * (1 << 20)}).encode()
    status, headers, payload = await raw_request(system, b"POST /api/projects HTTP/1.1", body)
    assert status == 413
    assert "1 MiB" in json_error(headers, payload)
    status, listed, _ = await system.request("GET", "/api/projects")
    assert listed["projects"] == []


async def test_project_names_are_limited_in_bytes_and_their_folders_fit_the_file_system(system: System) -> None:
    await system.start()
    status, body, _ = await system.request("POST", "/api/projects", {"name": "é" * 128})  # 256 bytes
    assert status == 400 and "255 bytes" in body["error"]
    status, listed, _ = await system.request("GET", "/api/projects")
    root = projects_root(system.data_dir)
    assert listed["projects"] == [] and not (root.exists() and any(root.iterdir()))
    name = "🎞" * 63  # 252 bytes: a name that fits, a folder that would not
    first = await create_project(system, name)
    second = await create_project(system, name)
    assert first["name"] == name and second["folder"] == first["folder"] + " (2)"
    for project in (first, second):
        assert len(project["folder"].encode()) <= 210 and (projects_root(system.data_dir) / project["folder"]).is_dir()
        status, body, _ = await system.request("GET", f"/api/projects/{project['folder']}")
        assert status == 200 and body["project"]["project_id"] == project["project_id"]


async def test_uploaded_names_are_limited_in_bytes_and_the_longest_gets_its_derivatives(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    project = await create_project(system, "Names")
    too_long = "日" * 70 + ".jpg"  # 74 characters, 214 bytes
    longest = "日" * 65 + "a.jpg"  # 200 bytes: its derivatives' temporary names still fit in 255
    photo = photo_bytes("cameras/Canon_40D.jpg")
    status, body = await upload(system, project["folder"], [(too_long, photo), (longest, photo)])
    assert status == 201, body
    assert [f["name"] for f in body["files"]] == [longest]
    assert body["errors"] == [{"name": too_long, "error": "file name is longer than 200 bytes"}]
    folder = projects_root(system.data_dir) / project["folder"]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [longest]
    assert not list(folder.glob(".upload-*"))
    view = await system.wait_task(body["task_id"], timeout=30)
    assert view["task"]["status"] == "completed", view
    status, photos, _ = await system.request("GET", f"/api/projects/{project['folder']}/photos")
    assert [(p["filename"], p["thumbnail_status"], p["preview_status"]) for p in photos["photos"]] == [
        (longest[:-4], "generated", "generated")
    ]


async def test_a_file_name_that_is_not_utf8_is_refused_by_name(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    project = await create_project(system, "Bytes")
    body = (
        b'--b\r\nContent-Disposition: form-data; name="photos"; filename="bad\xff.jpg"\r\n\r\n'
        + photo_bytes("cameras/Canon_40D.jpg")
        + b"\r\n--b--\r\n"
    )
    status, headers, payload = await raw_request(
        system,
        f"POST /api/projects/{project['folder']}/upload HTTP/1.1\r\n"
        "Content-Type: multipart/form-data; boundary=b".encode(),
        body,
    )
    assert status == 400, payload
    answer = json.loads(payload)
    assert answer["errors"][0]["error"] == "file name is not valid UTF-8" and answer["files"] == []
    assert not any(p.name.startswith("bad") for p in (projects_root(system.data_dir) / project["folder"]).iterdir())


async def test_a_cursor_that_is_not_ours_is_a_400(system: System) -> None:
    await system.start()
    project = await create_project(system, "Cursor")
    for key in ([1 << 63, "", ""], [1 << 64 - 1, "x", "y"], [-1, "", ""], "nonsense"):
        cursor = base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")
        status, body, _ = await system.request("GET", f"/api/projects/{project['folder']}/photos?cursor={cursor}")
        assert status == 400 and "cursor" in body["error"], (key, status, body)


async def test_a_non_ascii_token_or_cookie_is_a_401_in_json(system: System) -> None:
    await system.start(api__token="s3cret")
    for header in (
        "Authorization: Bearer s3crét".encode(),
        b"Authorization: Bearer \xff\xfe",
        "Cookie: darkroom_session=sésame".encode(),
    ):
        status, headers, payload = await raw_request(system, b"GET /api/projects HTTP/1.1\r\n" + header)
        assert status == 401, (header, payload)
        assert "token" in json_error(headers, payload)
    status, headers, payload = await raw_request(system, b"GET /api/projects HTTP/1.1\r\nAuthorization: Bearer s3cret")
    assert status == 200, payload


async def test_create_project_answers_with_the_project_it_made_even_while_the_read_model_lags(system: System) -> None:
    await system.start(roles=("api",))  # no projector: the read model never moves
    status, body, headers = await system.request("POST", "/api/projects", {"name": "Lagging"})
    assert status == 201, body
    project = body["project"]
    assert project["name"] == "Lagging" and project["folder"] == "Lagging" and project["project_id"]
    assert project["photo_count"] == 0 and project["pending"] == {"photos": 0, "jpg": 0, "raw": 0, "other": 0}
    assert int(headers["X-Darkroom-Seq"]) > 0
    await system.start(roles=("projector",))
    status, view, _ = await system.request("GET", "/api/projects/Lagging")
    assert status == 200 and view["project"] == project


async def test_a_project_the_log_refused_leaves_no_folder_and_its_name_free(system: System) -> None:
    await system.start(roles=("projector", "api"))
    await create_project(system, "First")
    jsm = system.bus.jsm
    info = await jsm.stream_info("DARKROOM")
    # The log takes nothing more: every publish is refused.
    await jsm.update_stream(dataclasses.replace(info.config, max_msgs=info.state.messages, discard=DiscardPolicy.NEW))
    status, body, _ = await system.request("POST", "/api/projects", {"name": "Refused"})
    assert status == 503 and "event log" in body["error"], body
    assert not (projects_root(system.data_dir) / "Refused").exists()
    await jsm.update_stream(info.config)
    status, body, _ = await system.request("POST", "/api/projects", {"name": "Refused"})
    assert status == 201 and body["project"]["folder"] == "Refused", body
