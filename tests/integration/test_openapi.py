"""`/api/openapi.json` is a valid OpenAPI document of every route, and a bounded schemathesis run
against the real app (a real nats-server, real files) finds no 5xx."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from openapi_spec_validator import validate

from darkroom.kernel.definitions import load_definitions
from darkroom.worker.handlers import BUILTIN
from tests.conftest import System, create_project, photo_bytes, upload

TOKEN = "fuzz-t0ken"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
FUZZ_SEED = 20240501
FUZZ_EXAMPLES = 8  # per operation and phase: a few hundred requests in all, well under a minute


async def _spec(system: System) -> dict:
    status, spec, _ = await system.request("GET", "/api/openapi.json", headers=BEARER)
    assert status == 200, spec
    return spec


async def test_the_document_is_valid_openapi_and_documents_every_route_with_its_parameters(system: System) -> None:
    await system.start(api__token=TOKEN)
    spec = await _spec(system)
    validate(spec)
    served = {
        (r.method.lower(), r.resource.canonical)
        for r in system.api.api_runner.app.router.routes()
        if r.method not in ("HEAD", "*")
    }
    documented = {(method, path) for path, operations in spec["paths"].items() for method in operations}
    assert documented == served
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert in_path == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert {"2XX", "4XX", "5XX"} <= set(operation["responses"])
            secured = path.startswith("/api/") and path != "/api/session"
            assert ("security" in operation) == secured, (method, path)

    def query(method: str, path: str) -> set[str]:
        return {p["name"] for p in spec["paths"][path][method].get("parameters", []) if p["in"] == "query"}

    assert query("get", "/api/jobs") == {"type", "status", "show_maintenance", "limit", "project", "min_seq"}
    assert query("get", "/api/projects/{folder}/photos") == {"limit", "cursor", "min_seq"}
    assert query("get", "/api/events") == {"project", "show_maintenance", "last_event_id", "min_seq"}
    assert query("post", "/api/projects/{folder}/upload") == {"overwrite"}
    limit = next(p for p in spec["paths"]["/api/jobs"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    body = spec["paths"]["/api/projects"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["required"] == ["name"]
    form = spec["paths"]["/api/projects/{folder}/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["properties"]["photos"]["items"]["contentMediaType"] == "application/octet-stream"
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "api.token",
    }


async def test_a_bounded_schemathesis_run_finds_no_server_error(system: System, tmp_path: Path) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions(), api__token=TOKEN)
    system.http.headers.update(BEARER)
    # Something real to reach: a project with a photo, a finished task, a file in the trash.
    await create_project(system, "Shoot")
    status, body = await upload(
        system,
        "Shoot",
        [("P1.jpg", photo_bytes("cameras/Canon_40D.jpg")), ("P2.jpg", photo_bytes("cameras/Canon_40D.jpg"))],
    )
    await system.wait_task(body["task_id"], timeout=30)
    await system.request("PUT", "/api/projects/Shoot/keep", {"updates": [{"filename": "P2", "keep_jpg": False}]})
    status, commit, _ = await system.request("POST", "/api/projects/Shoot/commit-changes")
    await system.wait_task(commit["task_id"], timeout=30)
    values = {
        "folders": ["Shoot"],
        "filenames": ["P1"],
        "names": ["P1.jpg", "P2.jpg"],
        "task_ids": [body["task_id"], commit["task_id"]],
    }
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "".join(f"[dictionaries.{name}]\nvalues = {json.dumps(v)}\n" for name, v in values.items())
        + "[parameters]\n"
        + "".join(
            f'"path.{param}" = {{ dictionary = "{name}", probability = 0.7 }}\n'
            for param, name in (
                ("folder", "folders"),
                ("filename", "filenames"),
                ("name", "names"),
                ("task_id", "task_ids"),
            )
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{system.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--seed",
        str(FUZZ_SEED),
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "10",
        # One worker thread: two parse Python source at once (hypothesis describing a filter), which
        # CPython 3.11.7 can break on ("SystemError: AST constructor recursion depth mismatch", every run).
        "--workers",
        "1",
        "--exclude-path",
        "/api/events",  # a stream that never ends: its contract has tests of its own
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 180)
    text = out.decode()
    summary = re.search(r"(\d+) generated, (.*)", text)
    assert process.returncode == 0 and summary, text[-6000:]
    print(f"schemathesis: {summary.group(0)}")
    assert int(summary.group(1)) >= 200, summary.group(0)
