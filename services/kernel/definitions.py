"""Task definitions: load, validate, and the pure step decisions (CONTRACT §5)."""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import msgspec

from .events import Step, TaskParams, TaskRequested
from .vocabulary import Lane, Source

SHIPPED = resources.files("darkroom.schemas") / "task_definitions.json"  # package data
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class DefinitionError(Exception):
    """The definitions file cannot be used; the message names the problem."""


class TaskDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: str
    user_relevant: bool
    steps: list[Step]
    scope: str = "project"

    def requested(
        self,
        task_type: str,
        task_id: str,
        source: Source,
        *,
        project_id: str | None = None,
        folder: str | None = None,
        items: list[str] | None = None,
        causation_id: str | None = None,
        label: str | None = None,
        params: TaskParams | None = None,
    ) -> TaskRequested:
        """The task.requested that starts a task of this definition (of type `task_type`); `label` names
        what the user did when the definition's label does not say it."""
        return TaskRequested(
            task_id=task_id,
            project_id=project_id,
            folder=folder,
            source=source,
            causation_id=causation_id,
            task_type=task_type,
            label=label or self.label,
            user_relevant=self.user_relevant,
            steps=list(self.steps),
            items=list(items or []),
            params=params,
        )


Definitions = dict[str, TaskDefinition]


def parse_definitions(data: bytes, origin: str = "task definitions") -> Definitions:
    try:
        defs = msgspec.json.decode(data, type=Definitions)
    except msgspec.ValidationError as exc:
        raise DefinitionError(f"{origin}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise DefinitionError(f"{origin}: not valid JSON: {exc}") from None
    if not defs:
        raise DefinitionError(f"{origin}: defines no task types")
    for name, definition in defs.items():
        where = f"{origin}: task {name!r}"
        if not _NAME.match(name):
            raise DefinitionError(f"{where}: a task type is lower_snake_case")
        if definition.scope not in ("project", "global"):
            raise DefinitionError(f"{where}: scope must be 'project' or 'global'")
        if not definition.steps:
            raise DefinitionError(f"{where}: has no steps")
        for index, step in enumerate(definition.steps):
            if not _NAME.match(step.type):
                raise DefinitionError(f"{where}: step {index} job type {step.type!r} is not lower_snake_case")
            if not 0 <= step.priority <= 100:
                raise DefinitionError(f"{where}: step {index} priority {step.priority} is outside 0..100")
    return defs


def load_definitions(path: Path | None = None) -> Definitions:
    """The definitions in `path`, or the shipped ones."""
    source: Path | Traversable = path or SHIPPED
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise DefinitionError(f"cannot read task definitions {source}: {exc.strerror}") from None
    return parse_definitions(data, str(source))


def is_maintenance(user_relevant: bool, source: str) -> bool:
    """Maintenance work: a definition that is not user-relevant, or anything the schedule started."""
    return not user_relevant or source == "maintenance"


def lane_for(priority: int, threshold: int, maintenance: bool) -> Lane:
    """User work at or above the threshold takes the priority lane; everything else the normal one."""
    return "priority" if priority >= threshold and not maintenance else "normal"


def definitions_schema() -> dict[str, Any]:
    return msgspec.json.schema(Definitions)
