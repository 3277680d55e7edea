"""Fixtures: a real nats-server per test, real services, real SQLite files, an HTTP client."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import msgspec
import pytest

from darkroom.kernel.bus import Bus
from darkroom.kernel.config import Config, load_config
from darkroom.kernel.events import Codec
from darkroom.kernel.natsd import NatsServer
from darkroom.projector.store import read_model_path
from darkroom.runtime import Runtime
from tests.jobtypes import DEFINITIONS, JOB_TYPES

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "tests" / "data" / "photos"  # kept in the repo: a plain clone passes the suite

TEST_SETTINGS = {
    "pipeline.ack_wait_s": 2.0,
    "pipeline.backoff_base_s": 0.2,
    "pipeline.backoff_max_s": 1.0,
    "pipeline.job_timeout_s": 30.0,
    "api.port": 0,
    "processing.workers": 2,
    # The scenarios are written for two slots, one of them priority-only (the defaults have more).
    "pipeline.max_parallel_jobs": 2,
    "pipeline.priority_lane_slots": 1,
    "maintenance.interval_s": 0,  # scenarios start maintenance themselves; the schedule has its own tests
}


def make_config(data_dir: Path, **settings: Any) -> Config:
    overrides = dict(TEST_SETTINGS)
    overrides.update({key.replace("__", "."): value for key, value in settings.items()})
    return load_config(data_dir, environ={}, overrides=overrides)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last saw {result!r}")
        await asyncio.sleep(0.02)


async def until_ready(base_url: str, process: asyncio.subprocess.Process, what: str, timeout: float = 30.0) -> None:
    """Until GET /readyz answers 200; a process that exits meanwhile fails the test with its output."""

    async def check() -> bool:
        if process.returncode is not None:
            pipe = process.stderr or process.stdout
            output = (await pipe.read()).decode() if pipe is not None else ""
            raise AssertionError(f"{what} exited with {process.returncode}: {output}")
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{base_url}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await eventually(check, timeout, f"{what} to be ready")


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = await NatsServer(tmp_path / "nats").start()
    yield server
    await server.stop()


async def _reached(projector, seq: int) -> bool:
    return projector.projector.checkpoint >= seq


class System:
    """Running services plus the ways a user or a test looks at them."""

    def __init__(self, server: NatsServer, data_dir: Path) -> None:
        self.server = server
        self.data_dir = data_dir
        self.runtimes: list[Runtime] = []
        self.http = aiohttp.ClientSession()
        self.bus: Bus | None = None
        self.api: Runtime | None = None
        self.seq = 0
        self.verify_on_close = True
        self.retry_unavailable_s = 0.0  # how long a request answered 503 is tried again (as a UI would)

    async def start(
        self,
        roles: tuple[str, ...] = ("projector", "orchestrator", "worker", "api"),
        job_types: dict | None = None,
        orchestrator_name: str = "orchestrator",
        definitions: dict | None = None,
        codec: Codec | None = None,
        **settings: Any,
    ) -> Runtime:
        """Services with these roles; `codec`: every one, and this client's bus, read through it."""
        runtime = Runtime(
            config=make_config(self.data_dir, **settings),
            data_dir=self.data_dir,
            nats_url=self.server.url,
            definitions=definitions or DEFINITIONS,
            job_types=JOB_TYPES if job_types is None else job_types,
            roles=roles,
            orchestrator_name=orchestrator_name,
            codec=codec or Codec(),
        )
        await runtime.start()
        self.runtimes.append(runtime)
        if "api" in roles:
            self.api = runtime
        if codec is not None and self.bus is not None:
            await self.bus.close()  # the fixture's replay --verify reads through `codec` too
            self.bus = None
        if self.bus is None:
            self.bus = await Bus.connect(self.server.url, "darkroom-test", codec)
        return runtime

    @property
    def url(self) -> str:
        assert self.api is not None, "no runtime with the api role"
        return self.api.base_url

    async def request(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, Any, dict]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if method == "GET" and self.seq and "min_seq=" not in path:
            # Read your own writes: every GET waits for the newest mutation this client made.
            path += ("&" if "?" in path else "?") + f"min_seq={self.seq}"
        deadline = time.monotonic() + self.retry_unavailable_s
        while True:
            async with self.http.request(method, self.url + path, data=data, headers=headers) as response:
                text = await response.text()
                if "X-Darkroom-Seq" in response.headers:
                    self.seq = max(self.seq, int(response.headers["X-Darkroom-Seq"]))
                payload = json.loads(text) if response.content_type == "application/json" else text
            if response.status != 503 or time.monotonic() > deadline:
                return response.status, payload, dict(response.headers)
            await asyncio.sleep(0.2)  # "try again", as a client told 503 does

    async def start_task(self, task_type: str, items: list[str] | None = None) -> dict:
        status, body, headers = await self.request("POST", "/api/tasks", {"type": task_type, "items": items or []})
        assert status == 202, body
        return body["task"] | {"_seq": int(headers["X-Darkroom-Seq"])}

    async def task(self, task_id: str) -> dict:
        status, body, _ = await self.request("GET", f"/api/tasks/{task_id}")
        assert status == 200, body
        return body

    async def wait_task(self, task_id: str, *statuses: str, timeout: float = 15.0) -> dict:
        wanted = statuses or ("completed", "failed", "canceled")

        async def check():
            view = await self.task(task_id)
            return view if view["task"]["status"] in wanted else None

        return await eventually(check, timeout, f"task {task_id} to be {'/'.join(wanted)}")

    async def wait_job(self, task_id: str, step: int, *statuses: str, timeout: float = 15.0) -> dict:
        async def check():
            jobs = (await self.task(task_id))["jobs"]
            job = next((j for j in jobs if j["step_index"] == step), None)
            return job if job and job["status"] in statuses else None

        return await eventually(check, timeout, f"step {step} of {task_id} to be {'/'.join(statuses)}")

    async def log(self, subject: str = "darkroom.>") -> list[tuple[int, str, dict]]:
        """The stored events on `subject`, oldest first: (sequence, subject, event)."""
        assert self.bus is not None
        out = []
        async for batch in self.bus.read([subject]):
            out += [(s.seq, s.subject, json.loads(s.data)) for s in batch]
        return out

    async def settled(self, consumer: str = "orchestrator", timeout: float = 10.0) -> None:
        """Wait until a durable consumer has handled and acknowledged everything stored."""
        assert self.bus is not None

        async def check():
            info = await self.bus.jsm.consumer_info("DARKROOM", consumer)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(check, timeout, f"consumer {consumer} to settle")

    async def verify_replay(self) -> None:
        """The read model rebuilt from the log equals the live one: checked after every scenario."""
        from darkroom.replay.rebuild import replay

        live = read_model_path(self.data_dir)
        if not self.verify_on_close or self.bus is None or not live.exists() or self.bus.nc.is_closed:
            return
        projector = next(
            (r.projector for r in self.runtimes if r.projector is not None and not r._stopped and r.read_model == live),
            None,
        )
        if projector is None:
            return
        last = await self.bus.last_seq()
        await eventually(lambda: _reached(projector, last), 10, f"the projector to reach {last}")
        result = await replay(
            self.bus, self.data_dir.parent / f"verify-{os.getpid()}-{time.monotonic_ns()}.sqlite", live, verify=True
        )
        assert result.differences == [], "\n".join(result.differences[:20])

    async def validate_log(self) -> None:
        """Every event stored during the scenario validates against its schema in schemas/events/
        (checked after every scenario). Poison a test published on purpose is left out: what the
        codec cannot read, or finds on a subject other than its own (dispatch copies excepted)."""
        import jsonschema

        from darkroom.kernel.events import Codec, PoisonEvent
        from darkroom.kernel.subjects import is_dispatch, subject_for

        if self.bus is None or self.bus.nc.is_closed:
            return
        codec, validators, invalid = Codec(), {}, []
        async for batch in self.bus.read():
            for stored in batch:
                try:
                    event = codec.decode(stored.data)
                    own_subject = subject_for(event)
                except (PoisonEvent, ValueError):
                    continue
                if stored.subject != own_subject and not is_dispatch(stored.subject):
                    continue
                if event.type not in validators:
                    schema = json.loads((REPO / "schemas" / "events" / f"{event.type}.json").read_text())
                    validators[event.type] = jsonschema.Draft202012Validator(schema)
                invalid += [
                    f"{stored.seq} {stored.subject}: {error.message}"
                    for error in validators[event.type].iter_errors(json.loads(stored.data))
                ]
        assert not invalid, "events that do not match their schema:\n" + "\n".join(invalid[:20])

    async def close(self) -> None:
        for runtime in reversed(self.runtimes):
            await runtime.stop()
        if self.bus is not None:
            await self.bus.close()
        await self.http.close()


@pytest.fixture
async def system(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[System]:
    system = System(nats_server, tmp_path / "data")
    try:
        yield system
        await system.verify_replay()
        await system.validate_log()
        # No loop of any service failed for good during the scenario (it would have ended a real process).
        assert [r.loops.fatal for r in system.runtimes if r.loops.fatal] == []
    finally:
        await system.close()


def darkroom_cli(*args: str, env: dict | None = None) -> list[str]:
    return [sys.executable, "-m", "darkroom.cli", *args]


async def run_cli(system: System, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    """`darkroom ARGS` against the system's NATS and data folder: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli(*args, "--nats", system.server.url, "--data", str(system.data_dir)),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    env.update(extra)
    return env


class SSEClient:
    """Reads `GET /api/events` into a list of (id, event, data) as a browser would."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        last_event_id: str | None = None,
        reading: asyncio.Event | None = None,
    ) -> None:
        self.http = http
        self.url = url
        self.last_event_id = last_event_id
        self.reading = reading  # when given, nothing is read until it is set (a stalled tab)
        self.messages: list[tuple[str, str, dict]] = []
        self.comments = 0
        self.comment_times: list[float] = []  # time.monotonic() of each comment line
        self.connected_at = 0.0
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def __aenter__(self) -> SSEClient:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        async with self.http.get(self.url, headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as response:
            assert response.status == 200
            self.connected_at = time.monotonic()
            self.connected.set()
            if self.reading is not None:
                await self.reading.wait()
            fields: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "event" in fields:
                        self.messages.append(
                            (fields.get("id", ""), fields["event"], msgspec.json.decode(fields["data"]))
                        )
                    fields = {}
                elif line.startswith(":"):
                    self.comments += 1
                    self.comment_times.append(time.monotonic())
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value

    async def wait_for(
        self, predicate: Callable[[tuple[str, str, dict]], bool], timeout: float = 10.0, what: str = "an SSE message"
    ) -> tuple[str, str, dict]:
        async def check():
            return next((m for m in self.messages if predicate(m)), None)

        return await eventually(check, timeout, what)


async def create_project(system: System, name: str) -> dict:
    status, body, _ = await system.request("POST", "/api/projects", {"name": name})
    assert status == 201, body
    return body["project"]


async def upload(
    system: System, folder: str, files: list[tuple[str, bytes]], overwrite: bool = False, headers: dict | None = None
) -> tuple[int, dict]:
    """A multipart upload of (file name, content) pairs in the field `photos`, as a browser sends it."""
    boundary = "----darkroomtest" + os.urandom(8).hex()
    body = b""
    for name, content in files:
        # Browsers put the name in quotes as it is (escaping only quotes): a path survives to the server.
        quoted = name.replace('"', "%22")
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{quoted}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    url = f"{system.url}/api/projects/{folder}/upload" + ("?overwrite=true" if overwrite else "")
    headers = {**(headers or {}), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    deadline = time.monotonic() + system.retry_unavailable_s
    while True:
        async with system.http.post(url, data=body, headers=headers) as response:
            answer = await response.json()
            if "X-Darkroom-Seq" in response.headers:
                system.seq = max(system.seq, int(response.headers["X-Darkroom-Seq"]))
        if response.status != 503 or time.monotonic() > deadline:
            return response.status, answer
        await asyncio.sleep(0.2)  # "try again", as a client told 503 does


def photo_bytes(relative: str) -> bytes:
    return (PHOTOS / relative).read_bytes()


async def start_shipped(system: System, **settings: Any) -> Runtime:
    """The shipped task definitions and job handlers, as `darkroom up` runs them."""
    from darkroom.kernel.definitions import load_definitions
    from darkroom.worker.handlers import BUILTIN

    return await system.start(job_types=BUILTIN, definitions=load_definitions(), **settings)


async def photos_of(system: System, folder: str) -> dict[str, dict]:
    """A project's photos by basename, as GET returns them."""
    status, body, _ = await system.request("GET", f"/api/projects/{folder}/photos?limit=1000")
    assert status == 200, body
    return {p["filename"]: p for p in body["photos"]}


async def shoot(system: System, name: str, files: list[tuple[str, bytes]]) -> tuple[dict, Path]:
    """A new project with these files uploaded and processed: the project, and its folder on disk."""
    project = await create_project(system, name)
    status, body = await upload(system, project["folder"], files)
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    return project, system.data_dir / "projects" / project["folder"]


async def culled(
    system: System, name: str = "Culled", kept: str = "A", dropped: str = "B", timeout: float = 30
) -> Path:
    """Upload two photos, untick one, commit: the project's folder, `dropped`.jpg in its trash
    (basenames are unique across projects: give each project its own); each task within `timeout`."""
    project = await create_project(system, name)
    status, body = await upload(
        system,
        project["folder"],
        [
            (f"{kept}.jpg", photo_bytes("cameras/Canon_40D.jpg")),
            (f"{dropped}.jpg", photo_bytes("cameras/Nikon_D70.jpg")),
        ],
    )
    assert status == 201 and len(body["files"]) == 2, body
    view = await system.wait_task(body["task_id"], timeout=timeout)
    assert view["task"]["status"] == "completed", view
    status, body, _ = await system.request(
        "PUT", f"/api/projects/{project['folder']}/keep", {"updates": [{"filename": dropped, "keep_jpg": False}]}
    )
    assert status == 200, body
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/commit-changes")
    assert status == 202, body
    view = await system.wait_task(body["task_id"], timeout=timeout)
    assert view["task"]["status"] == "completed", view
    return system.data_dir / "projects" / project["folder"]
