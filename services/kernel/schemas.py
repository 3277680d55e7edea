"""JSON Schemas for integrators, generated from the event Structs (CONTRACT §4)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from .definitions import definitions_schema
from .events import ALL_EVENTS, Event, type_name


class NoCheckout(Exception):
    """This darkroom was installed from a wheel: there is no source tree to write schemas into."""


def checkout_dir() -> Path:
    """The source tree's `schemas/`, where `darkroom schemas --write` writes: the folder the package data
    `darkroom.schemas` is read from, under an editable install of a checkout (beside its pyproject.toml)."""
    data = resources.files("darkroom.schemas")
    if not isinstance(data, Path) or not (data.parent / "pyproject.toml").is_file():
        raise NoCheckout(
            f"the schemas at {data} are an installed package's, not a checkout's: run "
            "`darkroom schemas --write` in a checkout installed with `pip install -e .`"
        )
    return data


def event_schema(cls: type[Event]) -> dict[str, Any]:
    schema = msgspec.json.schema(cls)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = type_name(cls)
    return schema


def rendered(events: tuple[type[Event], ...] = ALL_EVENTS) -> dict[str, str]:
    """Relative path → file text, for every generated schema."""
    files = {f"events/{type_name(cls)}.json": _dump(event_schema(cls)) for cls in events}
    files["task_definitions.schema.json"] = _dump(definitions_schema())
    return files


def write(root: Path) -> list[Path]:
    """Bring the schema files under `root` up to date; returns those written."""
    written = []
    for relative, text in rendered().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
