"""Commit, revert and the trash: the culling half of a project."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from aiohttp import web

from ..kernel.clock import iso, parse_iso
from ..kernel.events import PhotoFilesRestored, PhotoKeepChanged
from ..kernel.folders import projects_root, restore_from_trash
from ..kernel.lease import LeaseBusy, Leases
from ..kernel.photos import TRASH_DIR, basename, kind_of, sidecar_of
from .claims import Undecided, claim, lives_in
from .deps import caught_up, deps, project_of
from .errors import error, read_json, respond
from .routes import Routes
from .tasks import request_task

routes = Routes()

LEASE_WAIT_S = 10.0
RESTORE_LABEL = "Restore from trash"  # its task is an upload_postprocess; the Processes panel says what it was


class Restore(msgspec.Struct, forbid_unknown_fields=True):
    names: list[str]


class TrashEntry(msgspec.Struct):
    name: str  # the name in .trash/, what restore takes
    original: str
    filename: str
    size: int
    trashed_at: str
    expires_at: str


@routes.post("/api/projects/{folder}/commit-changes")
async def commit_changes(request: web.Request) -> web.Response:
    """Start a change_commit task: what is available and not kept goes to the trash."""
    await caught_up(deps(request))
    project = await project_of(request)
    pending = project.pending
    if project.pending_photos == 0:
        return respond({"task_id": None, "pending": pending})
    task, seq = await request_task(deps(request), "change_commit", project, [])
    return respond({"task_id": task.id, "pending": pending}, status=202, seq=seq)


@routes.post("/api/projects/{folder}/revert-changes")
async def revert_changes(request: web.Request) -> web.Response:
    """Keep flags back to availability; no file is touched."""
    d = deps(request)
    await caught_up(d)
    project = await project_of(request)
    events = [
        PhotoKeepChanged(
            project_id=project.id,
            source="user",
            filename=p.filename,
            keep_jpg=True if p.pending_jpg else None,
            keep_raw=True if p.pending_raw else None,
            keep_other=True if p.pending_other else None,
        )
        for p in await d.read.all_photos(project.id)
        if p.has_pending
    ]
    seq = await d.bus.publish_all(events)
    return respond({"updated": len(events)}, seq=seq or None)


@routes.get("/api/projects/{folder}/trash")
async def list_trash(request: web.Request) -> web.Response:
    """What is in the trash and recoverable, and until when."""
    project = await project_of(request)
    d = deps(request)
    trash = projects_root(d.data_dir) / project.folder / TRASH_DIR
    ttl = timedelta(seconds=d.config.maintenance.trash_ttl_s)
    entries = []
    for row in await d.read.trash(project.id):
        try:
            size = (trash / row.trash_name).stat().st_size
        except FileNotFoundError:
            continue
        expires = iso(parse_iso(row.trashed_at) + ttl)
        entries.append(TrashEntry(row.trash_name, row.name, row.filename, size, row.trashed_at, expires))
    return respond({"trash": entries})


@routes.post("/api/projects/{folder}/trash/restore", body=Restore)
async def restore(request: web.Request) -> web.Response:
    """Move files (and their sidecars) back; the photos return, kept, and get their derivatives again."""
    d = deps(request)
    await caught_up(d)
    project = await project_of(request)
    body = await read_json(request, Restore)
    rows = {row.trash_name: row for row in await d.read.trash(project.id)}
    unknown = [n for n in body.names if n not in rows]
    if unknown:
        raise error(404, f"{unknown[0]!r} is not in the trash of {project.folder!r}")
    folder = projects_root(d.data_dir) / project.folder
    wanted = list(dict.fromkeys(body.names))
    # A variant brings back the sidecars that went to the trash with it.
    for name in list(wanted):
        row = rows[name]
        wanted += [
            r.trash_name
            for r in rows.values()
            if r.trash_name not in wanted
            and r.trashed_at == row.trashed_at
            and sidecar_of(r.name) in (row.name, basename(row.name))
        ]
    clashes = [rows[n].name for n in wanted if (folder / rows[n].name).exists()]
    if clashes:
        raise error(409, f"{clashes[0]!r} exists in the project again; move it away first")
    # A photo that comes back takes its basename again, unless another project has it meanwhile.
    for filename in dict.fromkeys(rows[n].filename for n in wanted):
        if await d.read.photo(project.id, filename) is None:
            try:
                holder = await claim(d, project.id, filename)
            except Undecided as exc:
                raise error(503, str(exc)) from None
            if holder is not None:
                raise error(409, await lives_in(d, filename, holder))
    try:
        async with Leases(d.bus, "api").hold(project.id, "trash restore", timeout=LEASE_WAIT_S):
            by_photo: dict[str, list[tuple[str, str]]] = {}
            for name in wanted:
                restore_from_trash(folder, name, rows[name].name)
                by_photo.setdefault(rows[name].filename, []).append((rows[name].name, name))
            events = [
                PhotoFilesRestored(
                    project_id=project.id,
                    source="user",
                    filename=filename,
                    names=[o for o, _ in moved],
                    trash_names=[t for _, t in moved],
                )
                for filename, moved in by_photo.items()
            ]
            seq = await d.bus.publish_all(events)
    except LeaseBusy as exc:
        raise error(409, str(exc)) from None
    except OSError as exc:
        raise error(500, f"could not restore: {exc}") from None
    photos = [f for f, moved in by_photo.items() if any(kind_of(o) for o, _ in moved)]
    task_id = None
    if photos:
        task, seq = await request_task(d, "upload_postprocess", project, photos, label=RESTORE_LABEL)
        task_id = task.id
    return respond({"restored": [rows[n].name for n in wanted], "task_id": task_id}, seq=seq)
