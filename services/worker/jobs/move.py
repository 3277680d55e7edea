"""photo_move: photos come into the job's project from whichever project has each, with every variant,
sidecar and derivative, their decisions and metadata; both projects' file leases held. Each file moved
is an event; a move that stops half-way goes on from the disk where it stopped, when the job runs
again or when maintenance of the project it leaves finds it (`unfinished`)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ...kernel.events import (
    BasenameClaimed,
    PhotoFileMoved,
    PhotoMoved,
    PhotoMoveStarted,
    TaskRequested,
)
from ...kernel.folders import move_file, projects_root, sha256_of
from ...kernel.photos import derivative_names
from ...projector.views import PhotoView, ProjectRow
from ..context import JobContext, PermanentError
from ..moving import MovePlan, move_plan, photo_files

SETTLED = ("generated", "not_supported")  # derivative statuses a moved photo keeps as they are


class Refused(Exception):
    """This photo cannot move (the reason says why); the others go on."""


async def photo_move(ctx: JobContext) -> None:
    read = ctx.resources.read
    target = await read.project(ctx.job.project_id)
    if target is None or target.deleted_at or not (projects_root(ctx.data_dir) / target.folder).is_dir():
        raise PermanentError(f"project {ctx.job.folder!r} is not there to move photos into")
    failures: list[str] = []
    by_source: dict[str, list[str]] = {}
    for basename in dict.fromkeys(ctx.items):
        owner = next(iter(await read.photos_named([basename])), None)
        if owner is None:
            failures.append(f"{basename}: no project has this photo")
        elif owner.project_id != target.id:
            by_source.setdefault(owner.project_id, []).append(basename)
    total = sum(map(len, by_source.values()))
    moved: list[PhotoView] = []
    done = 0
    await ctx.progress(0, total)
    root = projects_root(ctx.data_dir)
    for source_id, basenames in by_source.items():
        # Both leases, always in the same order: two moves between the same projects never wait on each other.
        async with contextlib.AsyncExitStack() as leases:
            for key in sorted({source_id, target.id}):
                await leases.enter_async_context(ctx.lease_of(key))
            await ctx.catch_up()  # what the jobs that held a lease before did is in the read model
            source = await read.project(source_id)
            here = there = None
            for basename in basenames:
                ctx.check_canceled()
                try:
                    photo = await _checked(ctx, source, target, basename)
                    if photo is not None:
                        here = here or Folder(root / source.folder)
                        there = there or Folder(root / target.folder)
                        await _move(ctx, photo, here, there, target)
                        moved.append(photo)
                except Refused as exc:
                    failures.append(f"{basename}: {exc}")
                done += 1
                await ctx.progress(done, total)
    unsettled = [p.filename for p in moved if p.thumbnail_status not in SETTLED]
    if unsettled:  # what had no derivatives where it was gets them here
        await ctx.publish([ctx.task("upload_postprocess", unsettled)])
    if failures:
        raise PermanentError("not moved: " + "; ".join(failures))


async def _checked(ctx: JobContext, source: ProjectRow | None, target: ProjectRow, basename: str) -> PhotoView | None:
    """The photo to move, once the read model has caught up under the leases (None: it is here already)."""
    if source is None or source.deleted_at:
        raise Refused(f"it belongs to the deleted project {source.folder if source else '?'!r}")
    photo = await ctx.resources.read.photo(source.id, basename)
    if photo is None:
        if await ctx.resources.read.photo(target.id, basename) is not None:
            return None
        raise Refused(f"it is no longer in project {source.folder!r}")
    if photo.moving_to not in (None, target.id):
        raise Refused("it is on its way to another project; that move finishes first")
    return photo


class Folder:
    """A project folder's entries, listed once for the photos a job moves from or to it: each photo's
    files are its own, and the leases keep every other file job out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.names = os.listdir(path)
        except FileNotFoundError:
            self.names = []

    def files(self, basename: str) -> set[str]:
        """The photo's files here, as paths relative to the folder."""
        return photo_files(basename, self.names, [d for d in derivative_names(basename) if (self.path / d).is_file()])


async def _move(ctx: JobContext, photo: PhotoView, here: Folder, there: Folder, target: ProjectRow) -> None:
    plan = move_plan(here.files(photo.filename), there.files(photo.filename))
    moves = plan.moves + _settle_clashes(plan, here.path, there.path, target)
    source_id = photo.project_id
    if photo.moving_to is None:
        await ctx.publish(
            [
                ctx.event(
                    PhotoMoveStarted,
                    project_id=source_id,
                    filename=photo.filename,
                    to_project_id=target.id,
                    names=plan.names,
                )
            ]
        )
    hand_over = ctx.resources.hand_over
    if hand_over is None:
        raise PermanentError("this worker cannot hand a basename over to another project")
    await hand_over(ctx.event(BasenameClaimed, filename=photo.filename))
    for name in moves:
        (there.path / name).parent.mkdir(exist_ok=True)  # `.thumb/`, `.preview/`
        move_file(here.path / name, there.path / name)
        await ctx.publish(
            [
                ctx.event(
                    PhotoFileMoved, project_id=source_id, filename=photo.filename, name=name, to_project_id=target.id
                )
            ]
        )
    await ctx.publish([ctx.event(PhotoMoved, filename=photo.filename, from_project_id=source_id, names=plan.names)])


def _settle_clashes(plan: MovePlan, here: Path, there: Path, target: ProjectRow) -> list[str]:
    """A file in both folders. A derivative there goes (it is made again from what it shows), and this
    one is moved: returned. An original with the same bytes is a copy that stopped before the one here
    was removed: that one goes now. An original with other bytes refuses the photo before any file of
    it moves."""
    derivatives = [n for n in plan.clashes if n.startswith(".")]
    originals = [n for n in plan.clashes if n not in derivatives]
    different = [n for n in originals if sha256_of(here / n) != sha256_of(there / n)]
    if different:
        raise Refused(f"a different {different[0]} is in project {target.folder!r} already")
    for name in originals:
        os.unlink(here / name)
    for name in derivatives:
        os.unlink(there / name)
    return derivatives


async def unfinished(ctx: JobContext, moving: list[PhotoView]) -> list[TaskRequested]:
    """Maintenance of a project finds photos whose move to another project stopped half-way: a photo_move
    there takes each on, unless one is under way already or that project is gone."""
    read = ctx.resources.read
    by_target: dict[str, list[str]] = {}
    for photo in moving:
        by_target.setdefault(photo.moving_to or "", []).append(photo.filename)
    tasks = []
    for target_id, basenames in by_target.items():
        target = await read.project(target_id)
        if target is None or target.deleted_at:
            continue  # its files wait in the deleted project's folder: restoring it finishes the move
        if any(t.type == "photo_move" for t in await read.open_tasks(target_id)):
            continue
        tasks.append(ctx.task("photo_move", basenames, project_id=target_id, folder=target.folder))
    return tasks
