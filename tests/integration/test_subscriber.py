"""An integrator's subscriber, written as one would outside Darkroom: nats-py, json, jsonschema.

Only the fixture that runs Darkroom and makes the upload comes from the project; the subscriber
and its validation use nothing but the published subjects and `schemas/events/`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import nats

from darkroom.kernel.definitions import load_definitions
from darkroom.worker.handlers import BUILTIN
from tests.conftest import System, create_project, eventually, photo_bytes, upload

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "events"


class PhotoSubscriber:
    """A plain core-NATS subscription on `darkroom.photo.>`, validating each event on arrival."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[tuple[str, dict]] = []
        self.invalid: list[str] = []
        self.validators: dict[str, jsonschema.protocols.Validator] = {}

    async def __aenter__(self) -> PhotoSubscriber:
        self.nc = await nats.connect(self.url)
        await self.nc.subscribe("darkroom.photo.>", cb=self.on_message)
        await self.nc.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()

    def validator(self, event_type: str):
        if event_type not in self.validators:
            schema = json.loads((SCHEMAS / f"{event_type}.json").read_text())
            self.validators[event_type] = jsonschema.validators.validator_for(schema)(schema)
        return self.validators[event_type]

    async def on_message(self, msg) -> None:
        event = json.loads(msg.data)
        self.received.append((msg.subject, event))
        for error in self.validator(event["type"]).iter_errors(event):
            self.invalid.append(f"{msg.subject} {event['type']}: {error.message}")


async def test_a_plain_subscriber_receives_an_uploads_photo_events_and_each_validates(system: System) -> None:
    await system.start(job_types=BUILTIN, definitions=load_definitions())
    async with PhotoSubscriber(system.server.url) as subscriber:
        project = await create_project(system, "Integrated")
        status, body = await upload(
            system,
            project["folder"],
            [
                ("DSC01.JPG", photo_bytes("cameras/Canon_40D.jpg")),
                ("DSC01.NEF", b"NEF" * 1000),
                ("DSC02.jpg", photo_bytes("orientation/portrait_6.jpg")),
                ("DSC03.NEF", b"RAW" * 500),
            ],
        )
        assert status == 201, body
        assert (await system.wait_task(body["task_id"], timeout=30))["task"]["status"] == "completed"
        stored = await system.log("darkroom.photo.>")

        async def all_received():
            return len(subscriber.received) >= len(stored)

        await eventually(all_received, 10, "every stored photo event to reach the subscriber")
        await asyncio.sleep(0.1)
    # Everything the log holds on those subjects, in the same order, each valid against its schema.
    assert [(subject, event) for _, subject, event in stored] == subscriber.received
    assert subscriber.invalid == []
    types = [event["type"] for _, event in subscriber.received]
    assert types.count("photo.file_added") == 4
    assert "photo.metadata_extracted" not in types  # in the JPGs' derivatives events (CONTRACT §7.1)
    assert types.count("photo.derivatives_updated") == 3  # DSC03 is RAW only: not_supported
    statuses = {
        e["filename"]: e["thumbnail_status"] for _, e in subscriber.received if e["type"] == "photo.derivatives_updated"
    }
    assert statuses == {"DSC01": "generated", "DSC02": "generated", "DSC03": "not_supported"}
    for subject, event in subscriber.received:
        assert subject.startswith(f"darkroom.photo.{project['project_id']}.") and subject.endswith(
            "." + event["type"].split(".", 1)[1]
        )
        assert event["project_id"] == project["project_id"] and event["v"] == 1

    # The schemas do reject what is not an event of their type.
    added = next(e for _, e in subscriber.received if e["type"] == "photo.file_added")
    schema = subscriber.validator("photo.file_added")
    assert not list(schema.iter_errors(added))
    assert list(schema.iter_errors({**added, "kind": "video"}))
    assert list(schema.iter_errors({k: v for k, v in added.items() if k != "size"}))
    assert list(schema.iter_errors({**added, "type": "photo.removed"}))
