"""upload_postprocess: metadata and the two derivatives of each photo in the job's items."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ...kernel.events import PhotoDerivativesUpdated, PhotoMetadataExtracted
from ...kernel.folders import scan
from ...kernel.photos import PREVIEW_DIR, THUMB_DIR, kind_of
from ..context import JobContext, reads_state
from ..imaging import Metadata, Spec, make_derivatives


def derivative_paths(folder: Path, basename: str) -> tuple[Path, Path]:
    return folder / THUMB_DIR / f"{basename}.webp", folder / PREVIEW_DIR / f"{basename}.jpg"


def source_of(names: list[str]) -> str | None:
    """Derivatives come from the JPG, else an OTHER variant; a RAW alone has none."""
    for wanted in ("jpg", "other"):
        for name in names:
            if kind_of(name) == wanted:
                return name
    return None


def up_to_date(source: Path, outputs: tuple[Path, ...]) -> bool:
    try:
        made = min(p.stat().st_mtime_ns for p in outputs)
        return made >= source.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def spec_of(ctx: JobContext) -> Spec:
    p = ctx.config.processing
    return Spec(p.thumbnail.max_dim, p.thumbnail.quality, p.preview.max_dim, p.preview.quality, p.max_megapixels)


@reads_state
async def upload_postprocess(ctx: JobContext) -> None:
    folder = ctx.project_dir
    listing = scan(folder)
    items = list(dict.fromkeys(ctx.items))
    done = 0
    slots = asyncio.Semaphore(ctx.config.processing.workers)
    spec = spec_of(ctx)

    async def one(basename: str) -> None:
        nonlocal done
        async with slots:
            ctx.check_canceled()
            await derive(ctx, folder, basename, listing.get(basename, []), spec)
            done += 1
            await ctx.progress(done, len(items))

    await ctx.progress(0, len(items))
    await asyncio.gather(*(one(item) for item in items))


async def derive(ctx: JobContext, folder: Path, basename: str, names: list[str], spec: Spec) -> None:
    """One photo: skipped when current, `not_supported` for a RAW alone, `failed` when unreadable."""
    if not names:
        return  # gone since the upload: manifest_check reconciles it
    source_name = source_of(names)
    if source_name is None:
        await ctx.publish([ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="not_supported",
                                     preview_status="not_supported")])
        return
    source = folder / source_name
    thumb, preview = derivative_paths(folder, basename)
    photo = await ctx.resources.read.photo(ctx.job.project_id, basename)
    if photo is not None and photo.thumbnail_status == "generated" and up_to_date(source, (thumb, preview)):
        return
    loop = asyncio.get_running_loop()
    try:
        meta: Metadata = await loop.run_in_executor(
            ctx.resources.pool, make_derivatives, str(source), str(thumb), str(preview), spec)
    except Exception as exc:  # one bad image fails alone; the job goes on
        await ctx.publish([ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="failed",
                                     preview_status="failed", error=_describe(exc))])
        return
    if not source.exists():
        # A commit trashed the source meanwhile: what was just made must not outlive it.
        for path in (thumb, preview):
            path.unlink(missing_ok=True)
        await ctx.publish([ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="missing",
                                     preview_status="missing")])
        return
    await ctx.publish([
        ctx.event(PhotoMetadataExtracted, filename=basename, taken_at=meta.taken_at, make=meta.make,
                  model=meta.model, orientation=meta.orientation, width=meta.width, height=meta.height),
        ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="generated",
                  preview_status="generated"),
    ])


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if "cannot identify image" not in text else "not a readable image"
