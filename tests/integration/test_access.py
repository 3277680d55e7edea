"""Access, on a real nats-server with deploy/nats-accounts.conf: the services' user runs everything,
the integrator's reads the log through consumers of its own and touches nothing of Darkroom's;
and the API acts for a browser's session cookie only from its own origin."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import AsyncIterator, Awaitable

import nats
import pytest
from nats.js import api

from darkroom.kernel.credentials import Credentials
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.natsd import NatsServer
from darkroom.kernel.subjects import lane_consumer
from darkroom.worker.handlers import BUILTIN
from tests.conftest import REPO, System, create_project, culled, eventually, photo_bytes, upload

ACCOUNTS = REPO / "deploy" / "nats-accounts.conf"
INBOX = "_INBOX_integrator"
OWN = "integrator_follow_log"


def password_of(user: str) -> str:
    found = re.search(rf'user: {user}, password: "([^"]+)"', ACCOUNTS.read_text())
    assert found, f"no user {user} in {ACCOUNTS}"
    return found.group(1)


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """Every test here runs against a nats-server with deploy's accounts, the services as `darkroom`."""
    server = await NatsServer(
        tmp_path / "nats", credentials=Credentials("darkroom", password_of("darkroom")), accounts=ACCOUNTS
    ).start()
    yield server
    await server.stop()


class Integrator:
    """A plain nats-py client with the integrator's credentials, and what the server refused it."""

    def __init__(self, server: NatsServer) -> None:
        self.url = f"nats://integrator:{password_of('integrator')}@{server.host}:{server.port}"
        self.refused: list[str] = []

    async def __aenter__(self) -> Integrator:
        async def on_error(exc: Exception) -> None:
            self.refused.append(str(exc).lower())

        self.nc = await nats.connect(self.url, inbox_prefix=INBOX, error_cb=on_error)
        self.js = self.nc.jetstream(timeout=2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()

    async def denied(self, what: str, attempt: Awaitable) -> None:
        """The server refuses `attempt`, naming the subject `what` as not allowed."""
        try:
            await attempt
        except Exception:  # a refused request gets no answer
            pass
        await eventually(lambda: self._refused(what), 5, f"a permissions violation for {what}")

    async def _refused(self, what: str) -> bool:
        return any("permissions violation" in r and what.lower() in r for r in self.refused)


async def test_the_darkroom_user_uploads_and_commits_and_the_integrator_touches_nothing_of_darkrooms(
    system: System, nats_server: NatsServer
) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    folder = await culled(system)
    assert (folder / "A.jpg").exists() and (folder / ".trash" / "B.jpg").exists()
    bus = system.bus
    lanes = {
        lane: (await bus.jsm.consumer_info("DARKROOM", lane_consumer(lane))).config for lane in ("priority", "normal")
    }
    last = await bus.last_seq()

    async with Integrator(nats_server) as integrator:
        # It reads: the stream, and a consumer of its own from the first event.
        assert (await integrator.js.stream_info("DARKROOM")).state.last_seq == last
        await integrator.js.add_consumer(
            "DARKROOM",
            api.ConsumerConfig(name=OWN, filter_subject="darkroom.project.>", ack_policy=api.AckPolicy.EXPLICIT),
        )
        own = await integrator.js.pull_subscribe_bind(OWN, stream="DARKROOM")
        first = (await own.fetch(1, timeout=5))[0]
        assert json.loads(first.data)["type"] == "project.created"
        await first.ack()  # its own consumer's messages: acknowledged
        await eventually(lambda: _acked(integrator.js), 5, "its own acknowledgement to count")

        # It cannot publish an event, nor anything else on Darkroom's subjects.
        await integrator.denied(
            '"darkroom.task.',
            integrator.js.publish("darkroom.task._.X.requested", b'{"type": "task.requested"}', timeout=1),
        )
        # Nor pull, acknowledge, change or delete Darkroom's consumers.
        next_job = f"$JS.API.CONSUMER.MSG.NEXT.DARKROOM.{lane_consumer('priority')}"
        await integrator.denied(next_job, integrator.nc.request(next_job, b'{"batch": 1}', timeout=1))
        await integrator.nc.publish(f"$JS.ACK.DARKROOM.{lane_consumer('normal')}.1.5.5.1700000000000000000.0", b"+ACK")
        await integrator.denied(f"$JS.ACK.DARKROOM.{lane_consumer('normal')}.", integrator.nc.flush(1))
        await integrator.denied(
            f"$JS.API.CONSUMER.DELETE.DARKROOM.{lane_consumer('normal')}",
            integrator.js.delete_consumer("DARKROOM", lane_consumer("normal")),
        )
        await integrator.denied(
            "$JS.API.CONSUMER.DELETE.DARKROOM.orchestrator", integrator.js.delete_consumer("DARKROOM", "orchestrator")
        )
        takeover = api.ConsumerConfig(
            name=lane_consumer("priority"), filter_subject="darkroom.nothing.>", ack_policy=api.AckPolicy.EXPLICIT
        )
        await integrator.denied(
            f"$JS.API.CONSUMER.CREATE.DARKROOM.{lane_consumer('priority')}",
            integrator.js.add_consumer("DARKROOM", takeover),
        )
        # the nameless form takes a name in its body and would update a consumer of that name
        body = json.dumps({"stream_name": "DARKROOM", "config": takeover.as_dict()}).encode()
        await integrator.denied(
            '"$JS.API.CONSUMER.CREATE.DARKROOM"',
            integrator.nc.request("$JS.API.CONSUMER.CREATE.DARKROOM", body, timeout=1),
        )
        # Nor see Darkroom's replies (acknowledgements, pulled jobs), nor the lease bucket.
        await integrator.denied('subscription to "_INBOX.>"', integrator.nc.subscribe("_INBOX.>"))
        await integrator.denied("$KV.darkroom_leases.", integrator.js.publish("$KV.darkroom_leases.P", b"x", timeout=1))

        # Work goes on, and it may watch the events live as they are stored.
        live = []

        async def watch(msg) -> None:
            live.append(json.loads(msg.data))

        await integrator.nc.subscribe("darkroom.project.>", cb=watch)
        await integrator.nc.flush(1)
        project = await create_project(system, "After")
        await eventually(
            lambda: _true(any(e["type"] == "project.created" and e["name"] == "After" for e in live)),
            5,
            "the live project.created",
        )
        status, body = await upload(system, project["folder"], [("C.jpg", photo_bytes("cameras/Pentax_K10D.jpg"))])
        assert status == 201, body
        assert (await system.wait_task(body["task_id"], timeout=30))["task"]["status"] == "completed"

    # Darkroom's consumers are as they were, and the log holds nothing but the new project's events.
    assert {
        lane: (await bus.jsm.consumer_info("DARKROOM", lane_consumer(lane))).config.filter_subject for lane in lanes
    } == {lane: config.filter_subject for lane, config in lanes.items()}
    assert (await bus.jsm.consumer_info("DARKROOM", "orchestrator")).name == "orchestrator"
    assert {e.get("project_id") for s, _, e in await system.log() if s > last} == {project["project_id"]}


async def _true(value: bool) -> bool:
    return value


async def _acked(js) -> bool:
    return (await js.consumer_info("DARKROOM", OWN)).num_ack_pending == 0


async def test_follow_log_reads_with_the_integrators_credentials(system: System, nats_server: NatsServer) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    task_events = await system.log("darkroom.task.>")
    url = Integrator(nats_server).url
    for _ in range(2):  # the second run replaces the consumer the first one left
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO / "examples" / "follow_log.py"),
            url,
            "--subject",
            "darkroom.task.>",
            "--from-seq",
            str(task_events[0][0] + 1),
            "--limit",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        lines = [json.loads(line) for line in out.decode().splitlines()]
        assert [(e["seq"], e["type"]) for e in lines] == [(s, e["type"]) for s, _, e in task_events[1:2]]


async def _projects(system: System) -> list[str]:
    _, body, _ = await system.request("GET", "/api/projects", headers={"Authorization": "Bearer t0ken"})
    return [p["name"] for p in body["projects"]]


async def test_the_session_cookie_works_only_from_the_same_origin_with_json_or_an_upload(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions(), api__token="t0ken")
    status, _, headers = await system.request(
        "POST", "/api/session", {"token": "t0ken"}, headers={"Content-Type": "application/json"}
    )
    assert status == 200
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    page = {"Cookie": cookie, "Origin": system.url, "Sec-Fetch-Site": "same-origin"}
    name = b'{"name": "Forged"}'
    for headers, status_wanted in (
        # another site, or another port of this host (same-site: a Strict cookie still goes along)
        ({"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"}, 403),
        (
            {
                "Origin": "https://evil.example",
                "Sec-Fetch-Site": "cross-site",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            403,
        ),
        ({"Origin": "http://127.0.0.1:1", "Content-Type": "text/plain"}, 403),  # a browser without Sec-Fetch-*
        # this origin, but a body no page of Darkroom sends
        ({**page, "Content-Type": "text/plain;charset=UTF-8"}, 415),
        ({**page, "Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({**page, "Content-Type": "multipart/form-data; boundary=x"}, 415),
    ):
        status, body, _ = await system.request("POST", "/api/projects", raw=name, headers={"Cookie": cookie, **headers})
        assert status == status_wanted and body["error"], (headers, status, body)
    assert await _projects(system) == []
    status, body, _ = await system.request(
        "POST", "/api/projects", raw=name, headers={**page, "Content-Type": "application/json"}
    )
    assert status == 201, body
    project = body["project"]
    # The upload is the one route that takes multipart from the page.
    files = [("U.jpg", photo_bytes("cameras/Canon_40D.jpg"))]
    status, body = await upload(system, project["folder"], files, headers=page)
    assert status == 201, body
    # Cancel, commit: a POST without a body needs no type.
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/commit-changes", headers=page)
    assert status == 200, body
    # A bearer token is no browser's doing: any body type, from anywhere, still works.
    status, body, _ = await system.request(
        "POST",
        "/api/projects",
        raw=b'{"name": "Scripted"}',
        headers={"Authorization": "Bearer t0ken", "Content-Type": "text/plain", "Origin": "https://elsewhere.example"},
    )
    assert status == 201, body
    assert sorted(await _projects(system)) == ["Forged", "Scripted"]


async def test_without_a_token_a_post_from_another_origin_is_refused_and_curl_still_works(system: System) -> None:
    await system.start()
    status, body, _ = await system.request(
        "POST",
        "/api/projects",
        raw=b'{"name": "Forged"}',
        headers={"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"},
    )
    assert status == 403 and "cross-origin" in body["error"]
    # curl -d '{"name": ...}' sends a form type and no Origin, as in the README
    status, body, _ = await system.request(
        "POST", "/api/projects", raw=b'{"name": "Curl"}', headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 201, body
    _, body, _ = await system.request("GET", "/api/projects")
    assert [p["name"] for p in body["projects"]] == ["Curl"]
