"""The project lifecycle's decisions (pure): when a deleted project goes for good, and what maintenance
does with a folder under `DIR/projects/` that no project has."""

from __future__ import annotations

from dataclasses import dataclass

from ..kernel.clock import parse_iso
from ..kernel.ids import is_id
from ..kernel.manifest import Manifest
from ..kernel.photos import MAX_PROJECT_NAME_BYTES, sanitize_folder


def expired(deleted_at: str, now: float, ttl_s: float) -> bool:
    """Whether a project deleted at `deleted_at` is past the trash TTL at `now` (seconds)."""
    return now - parse_iso(deleted_at).timestamp() > ttl_s


@dataclass(frozen=True)
class Known:
    """A project the read model has, as folder discovery needs to know it."""

    id: str
    folder: str
    deleted: bool
    folder_on_disk: bool


@dataclass(frozen=True)
class Adopt:
    """A new project for the folder, with this id and name, created now."""

    project_id: str
    name: str


@dataclass(frozen=True)
class Moved:
    """A project's folder was renamed by hand: the project follows it."""

    project_id: str
    name: str


@dataclass(frozen=True)
class Refuse:
    reason: str


def adoption(folder: str, manifest: Manifest | None, known: dict[str, Known], new_id: str) -> Adopt | Moved | Refuse:
    """What maintenance does with `folder`, which no project has: its manifest (None: missing or unreadable)
    may name a project; `known` are the projects there are, by id; `new_id` is the id a new one gets."""
    clean = sanitize_folder(folder)
    if clean != folder:
        if not clean:
            return Refuse("the folder name has no letters or digits; rename the folder")
        return Refuse(f"the folder name is not one Darkroom can serve (it would be {clean!r}); rename the folder")
    if manifest is None:
        return Adopt(new_id, folder)
    name = manifest.name.strip() if 0 < len(manifest.name.strip().encode()) <= MAX_PROJECT_NAME_BYTES else folder
    project = known.get(manifest.id)
    if project is None:
        # Another Darkroom's project, or one restored from a backup: its id stays, if it is one of ours.
        return Adopt(manifest.id if is_id(manifest.id) else new_id, name)
    if project.deleted:
        return Refuse(
            f"its .project.yaml is that of the deleted project {project.folder!r}: restore that project, "
            "or remove .project.yaml to adopt the folder as a new project"
        )
    if project.folder_on_disk:
        return Refuse(
            f"a copy of project {project.folder!r} (the same id in .project.yaml); remove .project.yaml "
            "to adopt it as a new project"
        )
    return Moved(project.id, name)
