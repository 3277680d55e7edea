"""JSON Schemas for integrators, generated from the event Structs (CONTRACT §4)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from .definitions import definitions_schema
from .events import ALL_EVENTS, Event, type_name

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def event_schema(cls: type[Event]) -> dict:
    schema = msgspec.json.schema(cls)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = type_name(cls)
    return schema


def rendered(events: tuple[type[Event], ...] = ALL_EVENTS) -> dict[str, str]:
    """Relative path → file text, for every generated schema."""
    files = {f"events/{type_name(cls)}.json": _dump(event_schema(cls)) for cls in events}
    files["task_definitions.schema.json"] = _dump(definitions_schema())
    return files


def write(root: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for relative, text in rendered().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def _dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
