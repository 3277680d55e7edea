"""The project lifecycle (CONTRACT §7.4): project_rename, project_delete and project_restore, asked for by a user;
deleted_projects_purge and folder_discovery, the steps of the global `projects_maintenance`."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time

from ...kernel.events import (
    Event,
    FolderRefused,
    ProjectCreated,
    ProjectDeleted,
    ProjectManifestWritten,
    ProjectPurged,
    ProjectRenamed,
    ProjectRestored,
    TaskCancelRequested,
)
from ...kernel.folders import deleted_project_dir, deleted_root, projects_root
from ...kernel.ids import new_id
from ...kernel.manifest import VERSION, Manifest, read_manifest, write_manifest
from ...kernel.photos import NoFolder, first_free, project_name_problem, sanitize_folder
from ...projector.views import ProjectRow
from ..context import JobContext, PermanentError
from ..lifecycle import Adopt, Known, Moved, adoption, expired

log = logging.getLogger("darkroom.worker")

QUIET_WAIT_S = 60.0  # how long a rename or delete waits for the project's other work to end before going on
DISCOVERY_LEASE = "folder_discovery"  # one discovery at a time, whichever worker runs it
SETTLE_S = 60.0  # a folder changed this recently may still be being made (a copy, a new project): next time


async def _project(ctx: JobContext) -> ProjectRow:
    project = await ctx.resources.read.project(ctx.job.project_id)
    if project is None:
        raise PermanentError(f"project {ctx.job.folder!r} is not known")
    return project


async def _until_quiet(ctx: JobContext, busy) -> None:
    """Wait, staying alive, until `busy()` finds nothing, or QUIET_WAIT_S has passed."""
    deadline = time.monotonic() + QUIET_WAIT_S
    while await busy() and time.monotonic() < deadline:
        ctx.alive()
        await asyncio.sleep(0.1)


async def project_rename(ctx: JobContext) -> None:
    """The project gets its new name, and its folder the name made of it (numbered when taken); the id
    stays. Jobs of other tasks that write into the folder without its lease end first (derivatives)."""
    name = (ctx.job.params.name or "").strip() if ctx.job.params else ""
    problem = project_name_problem(name)
    if problem:
        raise PermanentError(f"cannot rename to {name!r}: {problem}")
    base = sanitize_folder(name)
    read = ctx.resources.read
    project = await _project(ctx)

    async def running() -> bool:
        return any(j.task_id != ctx.job.task_id for j in await read.running_jobs(project.id))

    await _until_quiet(ctx, running)
    async with ctx.project_lease():
        await ctx.catch_up()
        project = await _project(ctx)
        if project.deleted_at:
            raise PermanentError(f"project {project.folder!r} was deleted")
        root = projects_root(ctx.data_dir)
        others = {p.folder for p in await read.projects() if p.id != project.id}

        def taken(folder: str) -> bool:
            manifest = read_manifest(root / folder)
            return folder in others or ((root / folder).exists() and (manifest is None or manifest.id != project.id))

        try:
            folder = first_free(base, taken, current=project.folder)
        except NoFolder as exc:
            raise PermanentError(str(exc)) from None
        if folder != project.folder:
            if (root / project.folder).is_dir():
                os.rename(root / project.folder, root / folder)  # atomic; `taken` made sure nothing is there
            elif not (root / folder).is_dir():  # neither: not an earlier attempt that renamed it already
                raise PermanentError(f"project folder {project.folder!r} is missing")
        write_manifest(root / folder, Manifest(id=project.id, name=name, created_at=project.created_at))
        await ctx.publish(
            [
                ctx.event(ProjectRenamed, name=name, folder=folder, previous_folder=project.folder),
                ctx.event(ProjectManifestWritten, version=VERSION, reason="renamed"),
            ]
        )
        await ctx.progress(1, 1)


async def project_delete(ctx: JobContext) -> None:
    """The project's other tasks are canceled (and given time to end), its folder goes to
    `DIR/trash/<project_id>`, restorable until the trash TTL is over."""
    read = ctx.resources.read
    project = await _project(ctx)
    if project.deleted_at:
        return  # an earlier attempt deleted it
    others = [t for t in await read.open_tasks(project.id) if t.id != ctx.job.task_id]
    await ctx.publish(
        [
            TaskCancelRequested(project_id=project.id, task_id=t.id, causation_id=ctx.job.id, source=ctx.job.source)
            for t in others
            if not t.cancel_requested
        ]
    )

    async def open_tasks() -> bool:
        return any(t.id != ctx.job.task_id for t in await read.open_tasks(project.id))

    await _until_quiet(ctx, open_tasks)
    async with ctx.project_lease():
        folder = projects_root(ctx.data_dir) / project.folder
        target = deleted_project_dir(ctx.data_dir, project.id)
        if folder.is_dir():
            deleted_root(ctx.data_dir).mkdir(exist_ok=True)
            if target.exists():
                raise PermanentError(f"{target} exists already; move it away to delete this project")
            os.rename(folder, target)
        await ctx.publish([ctx.event(ProjectDeleted, folder=project.folder)])
        await ctx.progress(1, 1)


async def project_restore(ctx: JobContext) -> None:
    """A deleted project comes back, with its photos (whose basenames it kept), in its folder, or in a
    numbered one when that is taken meanwhile; until the purge, however late."""
    async with ctx.project_lease():  # the purge holds it too
        await ctx.catch_up()
        project = await _project(ctx)
        if project.deleted_at is None:
            return  # restored already (an earlier attempt)
        source = deleted_project_dir(ctx.data_dir, project.id)
        if not source.is_dir():
            raise PermanentError(f"the folder of project {project.folder!r} is gone from {source.parent}")
        root = projects_root(ctx.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        others = {p.folder for p in await ctx.resources.read.projects()}
        try:
            folder = first_free(project.folder, lambda f: f in others or (root / f).exists())
        except NoFolder as exc:
            raise PermanentError(str(exc)) from None
        os.rename(source, root / folder)
        await ctx.publish([ctx.event(ProjectRestored, folder=folder)])
        await ctx.progress(1, 1)


async def deleted_projects_purge(ctx: JobContext) -> None:
    """Deleted projects past the trash TTL, counted from their deletion, go for good; their basenames
    are free again."""
    read = ctx.resources.read
    ttl, now = ctx.config.maintenance.trash_ttl_s, time.time()
    due = [p for p in await read.deleted_projects() if expired(p.deleted_at or "", now, ttl)]
    for done, project in enumerate(due, start=1):
        async with ctx.lease_of(project.id):  # a restore holds it too
            await ctx.catch_up()
            still = await read.project(project.id)
            if still is not None and still.deleted_at:
                folder = deleted_project_dir(ctx.data_dir, project.id)
                if folder.exists():
                    shutil.rmtree(folder)
                await ctx.publish([ctx.event(ProjectPurged, project_id=project.id)])
        await ctx.progress(done, len(due))


async def folder_discovery(ctx: JobContext) -> None:
    """A folder made by hand under `DIR/projects/` becomes a project, and the maintenance task it starts
    adopts its photos (folder_check); a folder renamed by hand takes its project with it; a folder that
    cannot be adopted is reported, with why, once for each reason."""
    root = projects_root(ctx.data_dir)
    async with ctx.lease_of(DISCOVERY_LEASE):
        await ctx.catch_up()
        found = _unknown_folders(root, {p.folder for p in await ctx.resources.read.projects()})
        for done, folder in enumerate(found, start=1):
            await _discover(ctx, root, folder)
            await ctx.progress(done, len(found))


def _unknown_folders(root, known: set[str]) -> list[str]:
    """Folders under the projects root that no project has, and that have not changed for SETTLE_S."""
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    return sorted(
        e.name
        for e in entries
        if not e.name.startswith(".")
        and e.name not in known
        and e.is_dir(follow_symlinks=False)
        and now - e.stat().st_mtime >= SETTLE_S
    )


async def _discover(ctx: JobContext, root, folder: str) -> None:
    read = ctx.resources.read
    manifest = read_manifest(root / folder)
    owner = await read.project(manifest.id) if manifest is not None else None
    if owner is not None:
        # A rename, delete or restore of that project may be moving this very folder: after it, or not at all.
        async with ctx.lease_of(owner.id):
            await ctx.catch_up()
            if not (root / folder).is_dir() or await read.project_by_folder(folder) is not None:
                return
            await _decide(ctx, root, folder, manifest)
    else:
        await _decide(ctx, root, folder, manifest)


async def _decide(ctx: JobContext, root, folder: str, manifest: Manifest | None) -> None:
    read = ctx.resources.read
    known = {}
    if manifest is not None and (project := await read.project(manifest.id)) is not None:
        known[project.id] = Known(
            project.id, project.folder, project.deleted_at is not None, (root / project.folder).is_dir()
        )
    decision = adoption(folder, manifest, known, new_id())
    events: list[Event] = []
    if isinstance(decision, Adopt):
        created = ctx.event(ProjectCreated, project_id=decision.project_id, name=decision.name, folder=folder)
        write_manifest(root / folder, Manifest(id=decision.project_id, name=decision.name, created_at=created.at))
        events = [
            created,
            ctx.event(ProjectManifestWritten, project_id=decision.project_id, version=VERSION, reason="adopted"),
            ctx.task("maintenance", [], project_id=decision.project_id, folder=folder),
        ]
        log.info("folder %r adopted as a project", folder)
    elif isinstance(decision, Moved):
        previous = (await read.project(decision.project_id)).folder
        events = [
            ctx.event(
                ProjectRenamed,
                project_id=decision.project_id,
                name=decision.name,
                folder=folder,
                previous_folder=previous,
            )
        ]
        log.info("project folder %r was renamed to %r by hand: the project follows it", previous, folder)
    else:
        log.warning("folder %r cannot be adopted as a project: %s", folder, decision.reason)
        if not any(f.folder == folder and f.reason == decision.reason for f in await read.refused_folders()):
            events = [ctx.event(FolderRefused, folder=folder, reason=decision.reason)]
    await ctx.publish(events)
