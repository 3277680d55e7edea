"""Metadata and the two derivatives of a photo: upload_postprocess for the job's items, and
derivatives_check, which finds and remakes what is stuck or wrong in a whole project."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgspec

from ...kernel.events import PhotoDerivativesUpdated, PhotoMetadata, PhotoMetadataExtracted
from ...kernel.folders import Listing, derivative_paths, scan
from ...kernel.photos import derivative_names, derivative_source
from ...kernel.vocabulary import DerivativeStatus
from ..context import JobCanceledError, JobContext, PermanentError
from ..derivations import Derivations
from ..healing import Stamp, failure_kind, remake_reason
from ..imaging import Metadata
from ..rawpreview import NoPreview

log = logging.getLogger("darkroom.worker")


async def upload_postprocess(ctx: JobContext) -> None:
    await remake(ctx, ctx.items)


async def derivatives_check(ctx: JobContext) -> None:
    """Maintenance: every photo whose derivatives are stuck or wrong (healing.remake_reason) gets them
    made again; a photo still pending while other work on the project is under way is left to it."""
    read = ctx.resources.read
    project_id = ctx.job.project_id
    folder = ctx.project_dir
    busy = any(t.id != ctx.job.task_id for t in await read.open_tasks(project_id))
    photos = await read.all_photos(project_id)
    listing = scan(folder)
    wanted = []
    for done, photo in enumerate(photos, start=1):
        source = derivative_source(listing.get(photo.filename, []))
        reason = remake_reason(photo, source, *_state(folder, photo.filename, source), busy=busy)
        if reason is not None:
            log.info("%s/%s: derivatives made again: %s", ctx.job.folder, photo.filename, reason)
            wanted.append(photo.filename)
        if done % 200 == 0:
            ctx.check_canceled()
            await ctx.progress(done, len(photos))
    await ctx.progress(len(photos), len(photos))
    if wanted:
        await remake(ctx, wanted, force=True)  # its progress: the photos made again


async def remake(
    ctx: JobContext,
    basenames: list[str],
    *,
    force: bool = False,
    progress: Callable[[int, int], Awaitable[None]] | None = None,
    metadata: bool = True,
) -> None:
    """Metadata and derivatives of these photos of the job's project, in the image processes; each
    photo whose derivatives are right is skipped unless `force`. `progress` (default: the job's)
    hears of each photo done; `metadata=False`: the derivatives alone are reported. What every job
    that makes derivatives runs."""
    folder = ctx.project_dir
    listing = Listing(folder)
    items = list(dict.fromkeys(basenames))
    report = progress or ctx.progress
    done = 0

    async def one(basename: str) -> None:
        nonlocal done
        await derive(ctx, folder, basename, listing, force, metadata)
        done += 1
        await report(done, len(items))

    await report(0, len(items))
    await asyncio.gather(*(one(item) for item in items))


async def derive(
    ctx: JobContext,
    folder: Path,
    basename: str,
    listing: Listing,
    force: bool = False,
    metadata: bool = True,
) -> None:
    """One photo: skipped while its derivatives are right (unless `force`), else made (`_make`)."""
    photo = await ctx.resources.read.photo(ctx.job.project_id, basename)
    source_name = derivative_source(listing.files(basename, photo.files if photo is not None else []))
    if source_name is None:
        return  # gone since the upload: manifest_check reconciles it
    derivations = ctx.resources.derivations
    if derivations is None:
        raise PermanentError("this worker has no image processes")
    stamp, made_ns = _state(folder, basename, source_name)
    if (
        not force
        and photo is not None
        and not derivations.pending(folder / source_name)
        and remake_reason(photo, source_name, stamp, made_ns, busy=False) is None
    ):
        return
    await _make(ctx, derivations, folder, basename, source_name, stamp, metadata)


async def _make(
    ctx: JobContext,
    derivations: Derivations,
    folder: Path,
    basename: str,
    source_name: str,
    stamp: Stamp | None,
    metadata: bool,
) -> None:
    """Make a photo's derivatives and say what became of them: `generated` (with its metadata, unless
    not `metadata`), `not_supported` for a RAW alone with no embedded preview, `failed` with the kind of
    failure when they cannot be made, `missing` when their source went meanwhile; what they were made
    from is recorded whenever something was made from it."""
    source = folder / source_name
    made_from = {
        "made_from": source_name,
        "made_from_size": stamp.size if stamp else None,
        "made_from_mtime_ns": stamp.mtime_ns if stamp else None,
    }
    try:
        meta = await derivations.take(source, ctx.job.lane, ctx.is_canceled)
    except JobCanceledError:
        raise
    except NoPreview as exc:
        _remove(folder, basename)  # made from a variant that is gone: nothing may show them now
        await ctx.publish([_derivatives(ctx, basename, "not_supported", error=str(exc), **made_from)])
        return
    except Exception as exc:  # one bad image fails alone; the job goes on
        failed = _derivatives(ctx, basename, "failed", error=_describe(exc), error_kind=failure_kind(exc), **made_from)
        await ctx.publish([failed])
        return
    if not source.exists():
        # A commit trashed the source meanwhile: what was just made must not outlive it.
        _remove(folder, basename)
        await ctx.publish([_derivatives(ctx, basename, "missing")])
        return
    # One event for both (CONTRACT §7.1: a photo stores only what a reader needs).
    await ctx.publish(
        [_derivatives(ctx, basename, "generated", metadata=photo_metadata(meta) if metadata else None, **made_from)]
    )


def photo_metadata(meta: Metadata) -> PhotoMetadata:
    return PhotoMetadata(
        taken_at=meta.taken_at,
        make=meta.make,
        model=meta.model,
        orientation=meta.orientation,
        width=meta.width,
        height=meta.height,
        lens=meta.lens,
    )


def metadata_event(ctx: JobContext, basename: str, meta: Metadata) -> PhotoMetadataExtracted:
    return ctx.event(PhotoMetadataExtracted, filename=basename, **msgspec.structs.asdict(photo_metadata(meta)))


def _derivatives(ctx: JobContext, basename: str, status: DerivativeStatus, **fields: Any) -> PhotoDerivativesUpdated:
    """Both derivatives of a photo are now `status`."""
    return ctx.event(
        PhotoDerivativesUpdated, filename=basename, thumbnail_status=status, preview_status=status, **fields
    )


def _remove(folder: Path, basename: str) -> None:
    for path in derivative_paths(folder, basename):
        path.unlink(missing_ok=True)


def _state(folder: Path, basename: str, source: str | None) -> tuple[Stamp | None, int | None]:
    """What remake_reason reads from the disk: the source as it is now, and when the older of the
    photo's derivative files was made (None when one is missing)."""
    root = os.fspath(folder)  # paths as strings: a Path a file is dear in a large project
    stamp = made_ns = None
    try:
        if source is not None:
            st = os.stat(f"{root}/{source}")
            stamp = Stamp(st.st_size, st.st_mtime_ns)
    except OSError:  # gone, or not to be read: nothing to make derivatives from
        pass
    try:
        made_ns = min(os.stat(f"{root}/{name}").st_mtime_ns for name in derivative_names(basename))
    except OSError:  # not there (or their folder is not one): to be made
        pass
    return stamp, made_ns


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if "cannot identify image" not in text else "not a readable image"
