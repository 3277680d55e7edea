"""manifest_check and folder_check: the records follow the folder, never the other way round."""

from __future__ import annotations

from ...kernel.events import (
    Event,
    PhotoAvailabilityChanged,
    PhotoDerivativesUpdated,
    PhotoFileAdded,
    ProjectManifestWritten,
)
from ...kernel.folders import derivative_paths, scan, sha256_of
from ...kernel.manifest import Manifest, read_manifest, write_manifest
from ...kernel.photos import kind_of
from ..context import JobContext, PermanentError
from ..plans import availability
from .move import unfinished


async def manifest_check(ctx: JobContext) -> None:
    """The manifest exists and is right; each photo's availability matches the folder, and a photo
    that gained a source (a JPG copied in beside its RAW) gets its derivatives from a new task."""
    read = ctx.resources.read
    project = await read.project(ctx.job.project_id)
    if project is None:
        raise PermanentError(f"project {ctx.job.project_id} is not known")
    async with ctx.project_lease():
        folder = ctx.project_dir
        if not folder.is_dir():
            raise PermanentError(f"project folder {folder} is missing")
        await _repair_manifest(ctx, Manifest(id=project.id, name=project.name, created_at=project.created_at))
        listing = scan(folder)
        photos = await read.all_photos(project.id)
        if any(availability(photo, listing.get(photo.filename, [])) for photo in photos):
            # An upload may have saved a file and announced it since this job started: not a change.
            await ctx.catch_up()
            photos = await read.all_photos(project.id)
        # A photo whose move stopped half-way has files in two folders: the move goes on, from there.
        events: list[Event] = [*await unfinished(ctx, [p for p in photos if p.moving_to])]
        photos = [p for p in photos if not p.moving_to]
        sourced = []  # photos without derivatives whose source came by hand
        for done, photo in enumerate(photos, start=1):
            change = availability(photo, listing.get(photo.filename, []))
            if change is not None:
                events.append(
                    ctx.event(
                        PhotoAvailabilityChanged,
                        filename=photo.filename,
                        files=change.files,
                        jpg_available=change.jpg,
                        raw_available=change.raw,
                        other_available=change.other,
                    )
                )
                if change.stale:
                    for path in derivative_paths(folder, photo.filename):
                        path.unlink(missing_ok=True)
                    events.append(
                        ctx.event(
                            PhotoDerivativesUpdated,
                            filename=photo.filename,
                            thumbnail_status="missing",
                            preview_status="missing",
                        )
                    )
                if change.remake:
                    sourced.append(photo.filename)
            if done % 200 == 0:
                await ctx.progress(done, len(photos))
        if sourced:
            # As folder_check does for a new photo: the disk is the truth, thumbnails included.
            events.append(ctx.task("upload_postprocess", sourced))
        await ctx.publish(events)
        await ctx.progress(len(photos), len(photos))


async def folder_check(ctx: JobContext) -> None:
    """Accepted files with no photo become photos, and get their derivatives from a new
    upload_postprocess task; anything that is not a photo file is left exactly where it is."""
    async with ctx.project_lease():
        folder = ctx.project_dir
        listing = scan(folder)
        found = await _unrecorded(ctx, listing)
        if found:
            await ctx.catch_up()  # as in manifest_check: an upload's file is not stray
            found = await _unrecorded(ctx, listing)
        events: list[Event] = []
        for basename in found:
            for name in listing[basename]:
                path = folder / name
                events.append(
                    ctx.event(
                        PhotoFileAdded,
                        filename=basename,
                        name=name,
                        kind=kind_of(name),
                        size=path.stat().st_size,
                        sha256=sha256_of(path),
                    )
                )
        if found:
            events.append(ctx.task("upload_postprocess", found))
        await ctx.publish(events)
        await ctx.progress(len(found), len(found))


async def _unrecorded(ctx: JobContext, listing: dict[str, list[str]]) -> list[str]:
    """Basenames in the folder that no photo of any project has."""
    read = ctx.resources.read
    known = {p.filename for p in await read.all_photos(ctx.job.project_id)}
    elsewhere = {
        p.filename
        for p in await read.photos_named([b for b in listing if b not in known])
        if p.project_id != ctx.job.project_id
    }
    return sorted(b for b in listing if b not in known and b not in elsewhere)


async def _repair_manifest(ctx: JobContext, wanted: Manifest) -> None:
    """The project's manifest, written again (and said so) when it is missing or wrong."""
    if read_manifest(ctx.project_dir) != wanted:
        write_manifest(ctx.project_dir, wanted)
        await ctx.publish([ctx.event(ProjectManifestWritten, version=wanted.version, reason="repaired")])
