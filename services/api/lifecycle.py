"""The project lifecycle (CONTRACT §7.4): regenerate, rename, delete and restore a project, move photos
into one, and the folders maintenance could not adopt."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from ..kernel.events import TaskParams
from ..kernel.folders import projects_root
from ..kernel.photos import project_name_problem
from ..kernel.vocabulary import Regenerated
from ..projector.views import DeletedProject, ProjectRow
from .deps import Deps, caught_up, deps, project_of
from .errors import error, read_json, respond
from .routes import Routes
from .tasks import request_task

routes = Routes()

Items = Annotated[list[str], msgspec.Meta(min_length=1, max_length=10_000)]


class Regenerate(msgspec.Struct, forbid_unknown_fields=True):
    items: list[str] = []  # basenames; none: every photo of the project
    what: Annotated[list[Regenerated], msgspec.Meta(min_length=1)] | None = None  # default: both


class Rename(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class Move(msgspec.Struct, forbid_unknown_fields=True):
    items: Items  # basenames of photos in other projects


@routes.post("/api/projects/{folder}/regenerate", body=Regenerate)
async def regenerate(request: web.Request) -> web.Response:
    """Make derivatives and/or metadata again for these photos, or the whole project, even when generated."""
    d = deps(request)
    await caught_up(d)
    project = await project_of(request)
    body = await read_json(request, Regenerate)
    items = list(dict.fromkeys(body.items))
    missing = [i for i in items if await d.read.photo(project.id, i) is None]
    if missing:
        raise error(404, f"no photo {missing[0]!r} in project {project.folder!r}")
    return await _start(d, "regenerate", project, items, TaskParams(what=sorted(set(body.what))) if body.what else None)


@routes.patch("/api/projects/{folder}", body=Rename)
async def rename(request: web.Request) -> web.Response:
    """Rename the project and its folder (the id stays); the old folder's URLs answer 404 afterwards."""
    project = await project_of(request)
    body = await read_json(request, Rename)
    problem = project_name_problem(body.name)
    if problem:
        raise error(400, problem)
    return await _start(deps(request), "project_rename", project, [], TaskParams(name=body.name.strip()))


@routes.delete("/api/projects/{folder}")
async def delete(request: web.Request) -> web.Response:
    """Delete the project as a task: its tasks are canceled and its folder goes to DIR/trash/, restorable."""
    d = deps(request)
    await caught_up(d)
    return await _once(d, await project_of(request), "project_delete")


async def _once(d: Deps, project: ProjectRow, task_type: str) -> web.Response:
    """A task of this type on the project: the one under way, else a new one."""
    under_way = next((t for t in await d.read.open_tasks(project.id) if t.type == task_type), None)
    if under_way is not None:
        return respond({"task": under_way}, status=202)
    return await _start(d, task_type, project, [])


async def _start(
    d: Deps, task_type: str, project: ProjectRow, items: list[str], params: TaskParams | None = None
) -> web.Response:
    task, seq = await request_task(d, task_type, project, items, params=params)
    return respond({"task": task}, status=202, seq=seq)


@routes.post("/api/projects/{folder}/move", body=Move)
async def move(request: web.Request) -> web.Response:
    """Move these photos (basenames) into this project, from whichever project has each, with all their files."""
    d = deps(request)
    await caught_up(d)
    project = await project_of(request)
    body = await read_json(request, Move)
    items = list(dict.fromkeys(body.items))
    owners = {p.filename: p.project_id for p in await d.read.photos_named(items)}
    missing = [i for i in items if i not in owners]
    if missing:
        raise error(404, f"no project has a photo {missing[0]!r}")
    for item in items:
        owner = await d.read.project(owners[item])
        if owner is not None and owner.deleted_at:
            raise error(409, f"{item!r} belongs to the deleted project {owner.folder!r}; restore that project first")
    return await _start(d, "photo_move", project, items)


@routes.get("/api/trash/projects")
async def deleted_projects(request: web.Request) -> web.Response:
    """Deleted projects, restorable until `expires_at` (maintenance.trash_ttl_s after their deletion)."""
    d = deps(request)
    ttl = d.config.maintenance.trash_ttl_s
    return respond({"projects": [DeletedProject.of(p, ttl) for p in await d.read.deleted_projects()]})


@routes.post("/api/trash/projects/{project_id}/restore")
async def restore_project(request: web.Request) -> web.Response:
    """Bring a deleted project back with its photos, in its folder (or a numbered one, when that is taken)."""
    d = deps(request)
    await caught_up(d)
    project = await d.read.project(request.match_info["project_id"])
    if project is None:
        raise error(404, f"no deleted project {request.match_info['project_id']!r} (purged, or never there)")
    if project.deleted_at is None:
        raise error(409, f"project {project.folder!r} is not deleted")
    return await _once(d, project, "project_restore")


@routes.get("/api/unadopted-folders")
async def unadopted_folders(request: web.Request) -> web.Response:
    """Folders under DIR/projects/ that maintenance could not adopt as projects, and why."""
    d = deps(request)
    root = projects_root(d.data_dir)
    folders = [
        f
        for f in await d.read.refused_folders()
        if (root / f.folder).is_dir() and await d.read.project_by_folder(f.folder) is None
    ]
    return respond({"folders": folders})
