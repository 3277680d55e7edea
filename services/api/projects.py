"""Projects and photos: create, list, inspect, keep flags."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Literal

import msgspec
from aiohttp import web

from ..kernel.bus import Bus
from ..kernel.clock import now_iso
from ..kernel.events import PhotoKeepChanged, ProjectCreated, ProjectManifestWritten
from ..kernel.folders import projects_root
from ..kernel.ids import new_id
from ..kernel.manifest import VERSION, Manifest, write_manifest
from ..kernel.photos import MANIFEST, NoFolder, first_free, project_name_problem, sanitize_folder
from ..kernel.subjects import project_events
from ..projector.apply import project_after
from ..projector.views import ProjectView
from .deps import caught_up, deps, project_of
from .errors import error, read_json, respond
from .params import Limit, query_of
from .routes import Routes

routes = Routes()


class CreateProject(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class Page(msgspec.Struct, kw_only=True):
    limit: Limit = 100
    cursor: str | None = None  # the last page's next_cursor


class KeepUpdate(msgspec.Struct, forbid_unknown_fields=True):
    filename: str
    keep_jpg: bool | None = None
    keep_raw: bool | None = None
    keep_other: bool | None = None


class Keep(msgspec.Struct, forbid_unknown_fields=True):
    updates: list[KeepUpdate]


@routes.get("/api/projects")
async def list_projects(request: web.Request) -> web.Response:
    """Every project with its photo and pending counts."""
    return respond({"projects": [ProjectView.of(p) for p in await deps(request).read.projects()]})


@routes.post("/api/projects", body=CreateProject)
async def create_project(request: web.Request) -> web.Response:
    """Create a project: its folder (sanitized, made unique) and its manifest."""
    body = await read_json(request, CreateProject)
    d = deps(request)
    problem = project_name_problem(body.name)
    if problem:
        raise error(400, problem)
    root = projects_root(d.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    others = {p.folder for p in await d.read.projects()}

    def taken(folder: str) -> bool:
        if folder in others:
            return True
        try:
            os.mkdir(root / folder)  # atomic: two creations of one name get two folders
            return False
        except FileExistsError:
            return True

    try:
        folder = first_free(sanitize_folder(body.name), taken)
    except NoFolder as exc:
        raise error(409, str(exc)) from None
    project_id, created_at = new_id(), now_iso()
    write_manifest(root / folder, Manifest(id=project_id, name=body.name.strip(), created_at=created_at))
    events = [
        ProjectCreated(project_id=project_id, at=created_at, source="user", name=body.name.strip(), folder=folder),
        ProjectManifestWritten(project_id=project_id, source="user", version=VERSION),
    ]
    try:
        seq = await d.bus.publish_all(events)
    except Exception:
        await _unmade_unless_stored(d.bus, root / folder, project_id)
        raise
    # The project as its events make it: the answer never waits on the read model, which may lag.
    return respond({"project": ProjectView.of(project_after(events))}, status=201, seq=seq)


async def _unmade_unless_stored(bus: Bus, folder: Path, project_id: str) -> None:
    """A creation the log did not take changes nothing: its new folder goes, so that asking again gets
    the same name. Kept while the log cannot say (the project may still land; else discovery adopts it)."""
    try:
        stored = await bus.last_on(project_events(project_id))
    except Exception:
        return
    if stored is None:
        (folder / MANIFEST).unlink(missing_ok=True)
        os.rmdir(folder)  # made by this request and never known to anyone: nothing else is in it


@routes.get("/api/projects/{folder}")
async def get_project(request: web.Request) -> web.Response:
    """One project with its counts: photos, pending JPG/RAW/other, missing derivatives."""
    project = await project_of(request)
    d = deps(request)
    counts = {
        "photos": project.photo_count,
        "pending_photos": project.pending_photos,
        "pending_jpg": project.pending_jpg,
        "pending_raw": project.pending_raw,
        "pending_other": project.pending_other,
        "missing_derivatives": await d.read.missing_derivatives(project.id),
    }
    return respond({"project": ProjectView.of(project), "counts": counts})


@routes.get("/api/projects/{folder}/photos", query=Page)
async def list_photos(request: web.Request) -> web.Response:
    """Photos by taken_at then filename, a page at a time (`next_cursor`)."""
    project = await project_of(request)
    query = query_of(request, Page)
    limit, after = query.limit, _cursor(query.cursor)
    photos = await deps(request).read.photos(project.id, limit + 1, after)
    next_cursor = None
    if len(photos) > limit:
        photos = photos[:limit]
        last = photos[-1]
        next_cursor = _encode_cursor((int(last.taken_at is None), last.taken_at or "", last.filename))
    return respond({"photos": photos, "next_cursor": next_cursor})


def _encode_cursor(key: tuple[int, str, str]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def _cursor(raw: str | None) -> tuple[int, str, str] | None:
    if not raw:
        return None
    try:
        key = msgspec.json.decode(
            base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), type=tuple[Literal[0, 1], str, str]
        )  # (undated, taken_at, filename)
    except (ValueError, msgspec.DecodeError):
        raise error(400, "cursor is not one this server gave out") from None
    return key


@routes.put("/api/projects/{folder}/keep", body=Keep)
async def keep(request: web.Request) -> web.Response:
    """Set keep flags; a flag not given is unchanged."""
    d = deps(request)
    await caught_up(d)
    project = await project_of(request)
    body = await read_json(request, Keep)
    missing = [u.filename for u in body.updates if await d.read.photo(project.id, u.filename) is None]
    if missing:
        raise error(404, f"no photo {missing[0]!r} in project {project.folder!r}")
    events = [
        PhotoKeepChanged(
            project_id=project.id,
            source="user",
            filename=u.filename,
            keep_jpg=u.keep_jpg,
            keep_raw=u.keep_raw,
            keep_other=u.keep_other,
        )
        for u in body.updates
        if (u.keep_jpg, u.keep_raw, u.keep_other) != (None, None, None)
    ]
    seq = await d.bus.publish_all(events)
    return respond({"updated": len(events)}, seq=seq or None)
