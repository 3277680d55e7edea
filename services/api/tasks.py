"""Task and job routes: definitions, start, inspect, cancel, list."""

from __future__ import annotations

import msgspec
from aiohttp import web

from ..kernel.events import TaskCancelRequested, TaskParams
from ..kernel.ids import new_id
from ..kernel.photos import unsafe_name
from ..kernel.vocabulary import TERMINAL
from ..projector.apply import task_after
from ..projector.views import ProjectRow, TaskView
from .deps import Deps, deps, project_named, project_of
from .errors import error, read_json, respond
from .params import Limit, maintenance_shown, query_of
from .routes import Routes

routes = Routes()


class StartTask(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    project: str | None = None
    items: list[str] = []


class Listing(msgspec.Struct, kw_only=True):
    type: str | None = None
    status: str | None = None
    show_maintenance: bool | None = None
    limit: Limit = 100


class ListingAll(Listing, kw_only=True):
    project: str | None = None  # a folder


class TaskListingAll(ListingAll, kw_only=True):
    retried: bool | None = None  # false: only tasks no retry was made of (the failed ones still to see to)


@routes.get("/api/tasks/definitions")
async def definitions(request: web.Request) -> web.Response:
    """The task definitions: label, user relevance and steps of each task type."""
    return respond({"definitions": deps(request).definitions})


class StartProjectTask(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    items: list[str] = []


async def request_task(
    d: Deps,
    task_type: str,
    project: ProjectRow | None,
    items: list[str],
    key: str | None = None,
    label: str | None = None,
    params: TaskParams | None = None,
) -> tuple[TaskView, int]:
    """Store a task.requested (the user asked for it); returns the task as it now stands and its sequence.
    `label` names what the user did when it is not what the type's label says (a restore runs upload_postprocess)."""
    definition = d.definitions.get(task_type)
    if definition is None:
        raise error(400, f"unknown task type {task_type!r}; valid types: {', '.join(sorted(d.definitions))}")
    if definition.scope == "project" and project is None:
        raise error(400, f"task type {task_type!r} works on a project: give `project` (a folder)")
    bad = [item for item in items if unsafe_name(item)]
    if bad:
        raise error(400, f"items must be plain basenames; not {bad[0]!r}")
    event = definition.requested(
        task_type,
        new_id(),
        "user",
        project_id=project.id if project else None,
        folder=project.folder if project else None,
        items=items,
        label=label,
        params=params,
    )
    seq = await d.bus.publish(event, msg_id=f"request:{key}" if key else None)
    return task_after(event), seq


@routes.post("/api/tasks", body=StartTask)
async def start_task(request: web.Request) -> web.Response:
    """Start a task; answers once task.requested is stored."""
    body = await read_json(request, StartTask)
    d = deps(request)
    project = await project_named(d, body.project) if body.project else None
    task, seq = await request_task(d, body.type, project, body.items, request.headers.get("Idempotency-Key"))
    return respond({"task": task}, status=202, seq=seq)


@routes.post("/api/projects/{folder}/tasks", body=StartProjectTask)
async def start_project_task(request: web.Request) -> web.Response:
    """Start a task on this project; `items` are basenames for its first step."""
    project = await project_of(request)
    body = await read_json(request, StartProjectTask)
    task, seq = await request_task(
        deps(request), body.type, project, body.items, request.headers.get("Idempotency-Key")
    )
    return respond({"task": task}, status=202, seq=seq)


@routes.get("/api/projects/{folder}/tasks", query=Listing)
async def list_project_tasks(request: web.Request) -> web.Response:
    """This project's tasks, newest first."""
    project = await project_of(request)
    return respond({"tasks": await deps(request).read.tasks(**await _filters(request, Listing, project.id))})


@routes.get("/api/projects/{folder}/jobs", query=Listing)
async def list_project_jobs(request: web.Request) -> web.Response:
    """This project's jobs, newest first."""
    project = await project_of(request)
    return respond({"jobs": await deps(request).read.jobs(**await _filters(request, Listing, project.id))})


async def _task_of(request: web.Request) -> TaskView:
    task = await deps(request).read.task(request.match_info["task_id"])
    if task is None:
        raise error(404, f"task {request.match_info['task_id']!r} not found")
    return task


@routes.get("/api/tasks/{task_id}")
async def get_task(request: web.Request) -> web.Response:
    """One task with its jobs."""
    task = await _task_of(request)
    return respond({"task": task, "jobs": await deps(request).read.jobs_of(task.id)})


@routes.post("/api/tasks/{task_id}/cancel")
async def cancel_task(request: web.Request) -> web.Response:
    """Ask a task to stop: no later step starts; a running job stops at its next item."""
    d = deps(request)
    task = await _task_of(request)
    if task.status in TERMINAL:
        raise error(409, f"task {task.id} is already {task.status}")
    event = TaskCancelRequested(project_id=task.project_id, task_id=task.id, source="user")
    seq = await d.bus.publish(event, msg_id=f"task:{task.id}:cancel")
    return respond({"task": task_after(event, task)}, status=202, seq=seq)


@routes.get("/api/jobs", query=ListingAll)
async def list_jobs(request: web.Request) -> web.Response:
    """Jobs, newest first; maintenance work only with show_maintenance=true."""
    return respond({"jobs": await deps(request).read.jobs(**await _filters(request, ListingAll))})


@routes.get("/api/tasks", query=TaskListingAll)
async def list_tasks(request: web.Request) -> web.Response:
    """Tasks, newest first; maintenance work only with show_maintenance=true."""
    filters = await _filters(request, TaskListingAll)
    retried = query_of(request, TaskListingAll).retried
    return respond({"tasks": await deps(request).read.tasks(**filters, retried=retried)})


async def _filters(request: web.Request, params: type[Listing], project_id: str | None = None) -> dict:
    """A task or job list's filters: the project is the path's, or `?project=` (a folder) where taken."""
    query = query_of(request, params)
    if isinstance(query, ListingAll) and query.project:
        project_id = (await project_named(deps(request), query.project)).id
    return dict(
        project_id=project_id,
        type=query.type,
        status=query.status,
        limit=query.limit,
        show_maintenance=maintenance_shown(deps(request), query.show_maintenance),
    )
