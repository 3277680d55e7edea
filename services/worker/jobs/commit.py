"""file_removal, manifest_cleaning, trash_maintenance: the only code that removes anything, and
it removes only into `.trash/` (file_removal) or out of it after its time to live, besides the
part files of uploads that broke off (never an original: those are renamed only when whole)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ...kernel.clock import now_iso, parse_iso
from ...kernel.events import Event, PhotoDerivativesUpdated, PhotoFilesTrashed, PhotoRemoved, ProjectTrashPurged
from ...kernel.folders import derivative_paths, move_to_trash, restore_from_trash, scan
from ...kernel.photos import TRASH_DIR, is_upload_temp
from ..context import JobContext, PermanentError
from ..healing import stale_uploads
from ..plans import removal
from .derivatives import remake


async def file_removal(ctx: JobContext) -> None:
    """Work out from the read model, at run time, what is available and not kept (so a revert made
    before this runs wins); move it and its sidecars to the trash. A photo whose source went and
    another variant stays gets its derivatives from that one."""
    read = ctx.resources.read
    resourced = []
    async with ctx.project_lease():
        folder = ctx.project_dir
        photos = [p for p in await read.all_photos(ctx.job.project_id) if p.has_pending]
        failures = []
        await ctx.progress(0, len(photos))
        for done, photo in enumerate(photos, start=1):
            plan = removal(photo, lambda name: (folder / name).exists(), os.listdir(folder))
            try:
                moved = _trash_all(folder, plan.moving)
            except OSError as exc:
                failures.append(f"{photo.filename}: {exc.strerror or exc}")
                continue
            events: list[Event] = []
            if moved:
                events.append(
                    ctx.event(
                        PhotoFilesTrashed,
                        filename=photo.filename,
                        names=[m[0] for m in moved],
                        trash_names=[m[1] for m in moved],
                        trashed_at=now_iso(),
                    )
                )
            if plan.derivatives == "missing":
                for path in derivative_paths(folder, photo.filename):
                    path.unlink(missing_ok=True)
            elif plan.derivatives == "pending":
                resourced.append(photo.filename)
            if plan.derivatives is not None:
                events.append(
                    ctx.event(
                        PhotoDerivativesUpdated,
                        filename=photo.filename,
                        thumbnail_status=plan.derivatives,
                        preview_status=plan.derivatives,
                    )
                )
            if plan.removed:
                events.append(ctx.event(PhotoRemoved, filename=photo.filename, reason="every variant was removed"))
            await ctx.publish(events)
            await ctx.progress(done, len(photos))
    # Outside the lease: image work must not hold up the project's other file jobs.
    await remake(ctx, resourced, force=True, progress=lambda done, total: _alive(ctx))
    if failures:
        raise PermanentError("could not move to the trash: " + "; ".join(failures))


def _trash_all(folder: Path, names: list[str]) -> list[tuple[str, str]]:
    """Move these files to the trash, all or none (a photo stays as it was); each one's trash name."""
    moved: list[tuple[str, str]] = []
    try:
        for name in names:
            moved.append((name, move_to_trash(folder, name)))
    except OSError:
        for name, trash_entry in reversed(moved):
            restore_from_trash(folder, trash_entry, name)
        raise
    return moved


async def _alive(ctx: JobContext) -> None:
    ctx.alive()


async def manifest_cleaning(ctx: JobContext) -> None:
    """Photos with no JPG, RAW or OTHER file left on disk are removed (never one whose file is there)."""
    read = ctx.resources.read
    async with ctx.project_lease():
        folder = ctx.project_dir
        listing = scan(folder)
        gone = [
            p for p in await read.all_photos(ctx.job.project_id) if not listing.get(p.filename) and not p.moving_to
        ]  # a moving photo is the move's to finish
        for photo in gone:
            for path in derivative_paths(folder, photo.filename):
                path.unlink(missing_ok=True)
        await ctx.publish([ctx.event(PhotoRemoved, filename=p.filename, reason="no file left on disk") for p in gone])
        await ctx.progress(len(gone), len(gone))


async def trash_maintenance(ctx: JobContext) -> None:
    """Trash entries older than maintenance.trash_ttl_s, counted from when they were trashed, go; so
    do the part files of uploads that broke off (healing.stale_uploads)."""
    ttl = ctx.config.maintenance.trash_ttl_s
    read = ctx.resources.read
    async with ctx.project_lease():
        trash = ctx.project_dir / TRASH_DIR
        recorded = {
            row.trash_name: parse_iso(row.trashed_at).timestamp() for row in await read.trash(ctx.job.project_id)
        }
        now = time.time()
        expired = []
        try:
            entries = list(os.scandir(trash))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            trashed_at = recorded.get(entry.name, entry.stat().st_mtime)
            if now - trashed_at > ttl:
                os.unlink(entry.path)
                expired.append(entry.name)
        for name in stale_uploads(_upload_parts(ctx.project_dir), now):
            (ctx.project_dir / name).unlink(missing_ok=True)
        if expired:
            await ctx.publish([ctx.event(ProjectTrashPurged, trash_names=sorted(expired))])
        await ctx.progress(len(expired), len(expired))


def _upload_parts(folder: Path) -> list[tuple[str, float]]:
    """(name, mtime) of the upload part files in a project folder, as they are now."""
    parts = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if is_upload_temp(entry.name):
                    try:
                        parts.append((entry.name, entry.stat().st_mtime))
                    except FileNotFoundError:  # its upload completed meanwhile
                        pass
    except FileNotFoundError:  # no folder: manifest_check says so
        pass
    return parts
