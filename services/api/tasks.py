"""Task and job routes: definitions, start, inspect, cancel, list."""

from __future__ import annotations

import msgspec
from aiohttp import web

from ..kernel.events import TaskCancelRequested, TaskRequested
from ..kernel.ids import new_id
from ..projector.apply import Rows, apply
from .deps import deps
from .errors import error, read_json, respond

routes = web.RouteTableDef()

TERMINAL = ("completed", "failed", "canceled")


class StartTask(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    project: str | None = None
    items: list[str] = []


def flag(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise error(400, f"{name} must be true or false, not {value!r}")


def limit_of(request: web.Request, default: int = 100, most: int = 1000) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise error(400, f"limit must be a whole number, not {raw!r}") from None
    if not 1 <= value <= most:
        raise error(400, f"limit must be between 1 and {most}")
    return value


@routes.get("/api/tasks/definitions")
async def definitions(request: web.Request) -> web.Response:
    """The task definitions: label, user relevance and steps of each task type."""
    return respond({"definitions": deps(request).definitions})


@routes.post("/api/tasks")
async def start_task(request: web.Request) -> web.Response:
    """Start a task; answers once task.requested is stored."""
    body = await read_json(request, StartTask)
    d = deps(request)
    definition = d.definitions.get(body.type)
    if definition is None:
        valid = ", ".join(sorted(d.definitions))
        raise error(400, f"unknown task type {body.type!r}; valid types: {valid}")
    if definition.scope == "project" and not body.project:
        raise error(400, f"task type {body.type!r} works on a project: give `project` (a folder)")
    project_id = folder = None
    if body.project:
        # Projects arrive with the photo model; until one exists no folder can be resolved.
        raise error(404, f"project {body.project!r} not found")
    bad = [item for item in body.items if not item or "/" in item or "\x00" in item]
    if bad:
        raise error(400, f"items must be plain basenames; not {bad[0]!r}")
    event = TaskRequested(
        task_id=new_id(), project_id=project_id, folder=folder, source="user", task_type=body.type,
        label=definition.label, user_relevant=definition.user_relevant, steps=list(definition.steps),
        items=body.items)
    key = request.headers.get("Idempotency-Key")
    seq = await d.bus.publish(event, msg_id=f"request:{key}" if key else None)
    rows = Rows()
    apply(rows, event)
    return respond({"task": rows.tasks[event.task_id]}, status=202, seq=seq)


start_task.body = StartTask  # type: ignore[attr-defined]


@routes.get("/api/tasks/{task_id}")
async def get_task(request: web.Request) -> web.Response:
    """One task with its jobs."""
    d = deps(request)
    task = await d.read.task(request.match_info["task_id"])
    if task is None:
        raise error(404, f"task {request.match_info['task_id']!r} not found")
    return respond({"task": task, "jobs": await d.read.jobs_of(task.id)})


@routes.post("/api/tasks/{task_id}/cancel")
async def cancel_task(request: web.Request) -> web.Response:
    """Ask a task to stop: no later step starts; a running job stops at its next item."""
    d = deps(request)
    task = await d.read.task(request.match_info["task_id"])
    if task is None:
        raise error(404, f"task {request.match_info['task_id']!r} not found")
    if task.status in TERMINAL:
        raise error(409, f"task {task.id} is already {task.status}")
    event = TaskCancelRequested(project_id=task.project_id, task_id=task.id, source="user")
    seq = await d.bus.publish(event, msg_id=f"task:{task.id}:cancel")
    rows = Rows(tasks={task.id: task})
    apply(rows, event)
    return respond({"task": rows.tasks[task.id]}, status=202, seq=seq)


@routes.get("/api/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """Jobs, newest first; maintenance work only with show_maintenance=true."""
    d = deps(request)
    if request.query.get("project"):
        raise error(404, f"project {request.query['project']!r} not found")
    jobs = await d.read.jobs(
        type=request.query.get("type") or None, status=request.query.get("status") or None,
        show_maintenance=flag(request, "show_maintenance", d.config.ui.include_maintenance_jobs),
        limit=limit_of(request))
    return respond({"jobs": jobs})


@routes.get("/api/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """Tasks, newest first; maintenance work only with show_maintenance=true."""
    d = deps(request)
    tasks = await d.read.tasks(
        type=request.query.get("type") or None, status=request.query.get("status") or None,
        show_maintenance=flag(request, "show_maintenance", d.config.ui.include_maintenance_jobs),
        limit=limit_of(request))
    return respond({"tasks": tasks})


@routes.get("/api/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    """Messages set aside as unreadable, with why."""
    return respond({"dead_letters": await deps(request).read.dead_letters(limit_of(request, 1000, 10_000))})

