"""`darkroom regenerate | rename | delete | deleted | undelete | move`: the project lifecycle from a
terminal (CONTRACT §7.4). Each asks for the task the API would, as the user, checked against the read
model first; `--wait` follows the task to its end."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..kernel.bus import Bus
from ..kernel.config import Config
from ..kernel.definitions import Definitions
from ..kernel.events import TaskParams
from ..kernel.ids import new_id
from ..kernel.photos import project_name_problem
from ..kernel.vocabulary import TERMINAL
from ..projector.queries import CATCH_UP_S, ReadModel
from ..projector.views import DeletedProject, ProjectRow
from .refused import Refused, caught_up


@dataclass
class Control:
    bus: Bus
    read: ReadModel
    definitions: Definitions
    config: Config


def add_commands(command) -> None:
    """The lifecycle's commands, made with `command(name, help)` (an argparse sub-parser maker)."""

    def task(name: str, help: str) -> argparse.ArgumentParser:
        p = command(name, help)
        p.add_argument("--wait", action="store_true", help="until the task ends; exit 1 unless it completes")
        return p

    p = task("regenerate", "make derivatives and/or metadata again for photos of a project, or all of them")
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("filenames", nargs="*", metavar="FILENAME", help="basenames (default: every photo)")
    p.add_argument(
        "--what", choices=("derivatives", "metadata"), action="append", help="only this (repeatable; default: both)"
    )
    p = task("rename", "rename a project and its folder (its id stays)")
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("name", metavar="NAME")
    p = task("delete", "delete a project: its folder goes to DIR/trash/, restorable until maintenance.trash_ttl_s")
    p.add_argument("folder", metavar="FOLDER")
    command("deleted", "deleted projects, and until when each can be restored")
    p = task("undelete", "restore a deleted project (PROJECT_ID as `darkroom deleted` lists it)")
    p.add_argument("project_id", metavar="PROJECT_ID")
    p = task("move", "move photos (basenames), from whichever project has each, into the project FOLDER")
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("filenames", nargs="+", metavar="FILENAME")


COMMANDS = ("regenerate", "rename", "delete", "deleted", "undelete", "move")


async def run(control: Control, args: argparse.Namespace) -> int:
    read = control.read
    await caught_up(control.bus, read)
    if args.command == "deleted":
        return await _deleted(control)
    if args.command == "undelete":
        project = await read.project(args.project_id)
        if project is None or project.deleted_at is None:
            raise Refused(404, f"no deleted project {args.project_id!r}; `darkroom deleted` lists them")
        return await _request(control, "project_restore", project, [], None, args.wait)
    project = await read.project_by_folder(args.folder)
    if project is None:
        raise Refused(404, f"no project {args.folder!r}")
    if args.command == "regenerate":
        missing = [f for f in args.filenames if await read.photo(project.id, f) is None]
        if missing:
            raise Refused(404, f"no photo {missing[0]!r} in project {project.folder!r}")
        params = TaskParams(what=sorted(set(args.what))) if args.what else None
        return await _request(control, "regenerate", project, list(dict.fromkeys(args.filenames)), params, args.wait)
    if args.command == "rename":
        if problem := project_name_problem(args.name):
            raise Refused(400, problem)
        return await _request(control, "project_rename", project, [], TaskParams(name=args.name.strip()), args.wait)
    if args.command == "delete":
        return await _request(control, "project_delete", project, [], None, args.wait)
    owners = {p.filename for p in await read.photos_named(args.filenames)}
    if missing := [f for f in args.filenames if f not in owners]:
        raise Refused(404, f"no project has a photo {missing[0]!r}")
    return await _request(control, "photo_move", project, list(dict.fromkeys(args.filenames)), None, args.wait)


async def _request(
    control: Control, task_type: str, project: ProjectRow, items: list[str], params: TaskParams | None, wait: bool
) -> int:
    event = control.definitions[task_type].requested(
        task_type, new_id(), "user", project_id=project.id, folder=project.folder, items=items, params=params
    )
    seq = await control.bus.publish(event)
    print(
        f"{task_type} task {event.task_id} for project {project.folder!r}; its history: "
        f"darkroom audit task {event.task_id}"
    )
    if not wait:
        return 0
    status = await _ended(control.read, event.task_id or "", seq)
    print(f"{task_type} task {event.task_id}: {status.status}" + (f": {status.error}" if status.error else ""))
    return 0 if status.status == "completed" else 1


async def _ended(read: ReadModel, task_id: str, seq: int):
    await read.wait_for(seq, CATCH_UP_S)
    while True:
        task = await read.task(task_id)
        if task is not None and task.status in TERMINAL:
            return task
        await read.wait_change(read.checkpoint, 1.0)


async def _deleted(control: Control) -> int:
    projects = [
        DeletedProject.of(p, control.config.maintenance.trash_ttl_s) for p in await control.read.deleted_projects()
    ]
    if not projects:
        print("no deleted projects")
    for p in projects:
        print(
            f"{p.project_id}\t{p.folder}\t{p.photo_count} photos\tdeleted {p.deleted_at}\t"
            f"restorable until {p.expires_at}"
        )
    return 0
