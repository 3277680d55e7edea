"""services/kernel/schemas.py: the committed JSON Schemas are what the code generates."""

from __future__ import annotations

import json

from darkroom.kernel.events import ALL_EVENTS, type_name
from darkroom.kernel.schemas import checkout_dir, rendered, write

FIX = "run `darkroom schemas --write` and commit schemas/"
SCHEMA_DIR = checkout_dir()


def test_committed_schemas_equal_the_generated_ones():
    expected = rendered()
    stale = [
        rel
        for rel, text in expected.items()
        if not (SCHEMA_DIR / rel).is_file() or (SCHEMA_DIR / rel).read_text() != text
    ]
    assert not stale, f"schemas out of date: {stale}; {FIX}"


def test_no_schema_is_left_for_an_event_type_that_no_longer_exists():
    committed = {f"events/{p.name}" for p in (SCHEMA_DIR / "events").glob("*.json")}
    generated = {rel for rel in rendered() if rel.startswith("events/")}
    assert committed == generated, f"extra: {committed - generated}, missing: {generated - committed}; {FIX}"


def test_one_schema_per_event_type_named_by_type():
    files = rendered()
    for cls in ALL_EVENTS:
        schema = json.loads(files[f"events/{type_name(cls)}.json"])
        assert schema["title"] == type_name(cls)
        assert schema["$schema"].startswith("https://json-schema.org/")
    assert "task_definitions.schema.json" in files


def test_event_schemas_describe_the_envelope_and_the_tag():
    schema = json.loads(rendered()["events/job.requested.json"])
    body = schema["$defs"]["JobRequested"]
    assert body["properties"]["type"]["enum"] == ["job.requested"]
    for key in (
        "id",
        "v",
        "at",
        "project_id",
        "task_id",
        "job_id",
        "causation_id",
        "source",
        "task_type",
        "job_type",
        "step_index",
        "priority",
        "lane",
        "items",
    ):
        assert key in body["properties"], key
    assert set(body["required"]) >= {"type", "task_type", "job_type", "step_index", "priority", "lane"}


def test_write_creates_what_is_missing_and_is_then_a_no_op(tmp_path):
    written = write(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == set(rendered())
    assert write(tmp_path) == []
    assert (tmp_path / "events" / "task.requested.json").read_text() == rendered()["events/task.requested.json"]
