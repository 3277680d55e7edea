"""Metadata and the two derivatives of a photo: upload_postprocess for the job's items, and
derivatives_check, which finds and remakes what is stuck or wrong in a whole project."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import msgspec

from ...kernel.config import ProcessingConfig
from ...kernel.events import PhotoDerivativesUpdated, PhotoMetadata, PhotoMetadataExtracted
from ...kernel.folders import Listing, scan
from ...kernel.photos import PREVIEW_DIR, THUMB_DIR, derivative_source, kind_of
from ..context import JobCanceledError, JobContext, reads_state, retrieved
from ..healing import Stamp, failure_kind, remake_reason
from ..imaging import Metadata, Spec, make_derivatives
from ..rawpreview import NoPreview

log = logging.getLogger("darkroom.worker")


def derivative_names(basename: str) -> tuple[str, str]:
    """A photo's thumbnail and preview, relative to its project folder."""
    return f"{THUMB_DIR}/{basename}.webp", f"{PREVIEW_DIR}/{basename}.jpg"


def derivative_paths(folder: Path, basename: str) -> tuple[Path, Path]:
    thumb, preview = derivative_names(basename)
    return folder / thumb, folder / preview


def outputs_of(source: Path) -> tuple[Path, Path]:
    return derivative_paths(source.parent, source.name.rpartition(".")[0])


def up_to_date(source: Path, outputs: tuple[Path, ...]) -> bool:
    try:
        made = min(p.stat().st_mtime_ns for p in outputs)
        return made >= source.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def spec_of(p: ProcessingConfig) -> Spec:
    return Spec(p.thumbnail.max_dim, p.thumbnail.quality, p.preview.max_dim, p.preview.quality, p.max_megapixels)


def signature(path: Path) -> tuple[int, int, int]:
    """Which file a path names now: a replaced or rewritten file has another."""
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class Run:
    source: Path
    signature: tuple[int, int, int]
    future: asyncio.Future[Metadata]


class Derivations:
    """make_derivatives in the image processes, one run per photo at a time. The upload starts a run
    as each file lands (when the worker shares its process), so image work overlaps the rest of the
    upload; the job then takes that run over instead of decoding the file again."""

    KEEP = 1024  # finished runs nobody took (their task was canceled) kept at most

    def __init__(self, pool: Executor, spec: Spec) -> None:
        self.pool = pool
        self.spec = spec
        self.runs: dict[Path, Run] = {}  # by the photo's thumbnail path

    def prefetch(self, source: Path) -> None:
        """Start on a JPG the upload just saved: a JPG is its photo's source (derivative_source), known
        without listing the folder on the upload's path. Other kinds wait for their job."""
        if kind_of(source.name) != "jpg":
            return
        try:
            self.start(source)
        except FileNotFoundError:  # removed meanwhile: its job finds it gone
            pass

    def start(self, source: Path) -> Run:
        """The run deriving `source` as it is now: the one already going, else a new one, which waits
        for an older run of the same photo so that one cannot overwrite its files afterwards."""
        thumb, preview = outputs_of(source)
        now = signature(source)
        run = self.runs.pop(thumb, None)
        if run is None or run.source != source or run.signature != now:
            run = Run(source, now, asyncio.ensure_future(self._derive(run, source, thumb, preview)))
            run.future.add_done_callback(retrieved)
        self.runs[thumb] = run  # (re)inserted last: the oldest untaken runs go first
        for key in [k for k, r in self.runs.items() if r.future.done()][:max(0, len(self.runs) - self.KEEP)]:
            del self.runs[key]
        return run

    def pending(self, source: Path) -> bool:
        """A run of this photo nobody took yet: its files may look current, its events are still due."""
        return outputs_of(source)[0] in self.runs

    async def take(self, source: Path) -> Metadata:
        """Derive `source` for a job; a run that finished before is used only while its files are current."""
        outputs = outputs_of(source)
        run = self.start(source)
        if run.future.done() and run.future.exception() is None and not up_to_date(source, outputs):
            del self.runs[outputs[0]]
            run = self.start(source)
        try:
            return await run.future
        finally:
            if self.runs.get(outputs[0]) is run:
                del self.runs[outputs[0]]  # taken: a later job on this photo derives it afresh

    async def _derive(self, old: Run | None, source: Path, thumb: Path, preview: Path) -> Metadata:
        if old is not None:
            await asyncio.wait([old.future])
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, make_derivatives, str(source), str(thumb), str(preview), self.spec)


@reads_state
async def upload_postprocess(ctx: JobContext) -> None:
    await remake(ctx, ctx.items)


@reads_state
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


async def remake(ctx: JobContext, basenames: list[str], *, force: bool = False,
                 progress: Callable[[int, int], Awaitable[None]] | None = None, metadata: bool = True) -> None:
    """Metadata and derivatives of these photos of the job's project, in the image processes; each
    photo whose derivatives are right is skipped unless `force`. `progress` (default: the job's)
    hears of each photo done; `metadata=False`: the derivatives alone are reported. What every job
    that makes derivatives runs."""
    folder = ctx.project_dir
    listing = Listing(folder)
    items = list(dict.fromkeys(basenames))
    report = progress or ctx.progress
    done = 0
    # One more run queued than there are image processes: none waits while a result is published.
    slots = asyncio.Semaphore(ctx.config.processing.workers + 1)

    async def one(basename: str) -> None:
        nonlocal done
        await derive(ctx, folder, basename, listing, slots, force, metadata)
        done += 1
        await report(done, len(items))

    await report(0, len(items))
    await asyncio.gather(*(one(item) for item in items))


async def derive(ctx: JobContext, folder: Path, basename: str, listing: Listing, slots: asyncio.Semaphore,
                 force: bool = False, metadata: bool = True) -> None:
    """One photo: skipped while right (unless `force`), `not_supported` for a RAW alone with no embedded
    preview, `failed` with
    the kind of failure when it cannot be made; what it was made from is recorded either way."""
    photo = await ctx.resources.read.photo(ctx.job.project_id, basename)
    source_name = derivative_source(listing.files(basename, photo.files if photo is not None else []))
    if source_name is None:
        return  # gone since the upload: manifest_check reconciles it
    source = folder / source_name
    thumb, preview = derivative_paths(folder, basename)
    derivations = ctx.resources.derivations
    stamp, made_ns = _state(folder, basename, source_name)
    if (not force and photo is not None and not derivations.pending(source)
            and remake_reason(photo, source_name, stamp, made_ns, busy=False) is None):
        return
    made_from = {"made_from": source_name, "made_from_size": stamp.size if stamp else None,
                 "made_from_mtime_ns": stamp.mtime_ns if stamp else None}
    try:
        async with slots:
            ctx.check_canceled()
            meta = await derivations.take(source)
    except JobCanceledError:
        raise
    except NoPreview as exc:
        for path in (thumb, preview):  # made from a variant that is gone: nothing may show them now
            path.unlink(missing_ok=True)
        await ctx.publish([ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="not_supported",
                                     preview_status="not_supported", error=str(exc), **made_from)])
        return
    except Exception as exc:  # one bad image fails alone; the job goes on
        await ctx.publish([ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="failed",
                                     preview_status="failed", error=_describe(exc), error_kind=failure_kind(exc),
                                     **made_from)])
        return
    if not source.exists():
        # A commit trashed the source meanwhile: what was just made must not outlive it.
        for path in (thumb, preview):
            path.unlink(missing_ok=True)
        await ctx.publish([ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="missing",
                                     preview_status="missing")])
        return
    # One event for both (CONTRACT §7.1: a photo stores only what a reader needs).
    await ctx.publish([ctx.event(PhotoDerivativesUpdated, filename=basename, thumbnail_status="generated",
                                 preview_status="generated", metadata=photo_metadata(meta) if metadata else None,
                                 **made_from)])


def photo_metadata(meta: Metadata) -> PhotoMetadata:
    return PhotoMetadata(taken_at=meta.taken_at, make=meta.make, model=meta.model, orientation=meta.orientation,
                         width=meta.width, height=meta.height)


def metadata_event(ctx: JobContext, basename: str, meta: Metadata) -> PhotoMetadataExtracted:
    return ctx.event(PhotoMetadataExtracted, filename=basename, **msgspec.structs.asdict(photo_metadata(meta)))


def _state(folder: Path, basename: str, source: str | None) -> tuple[Stamp | None, int | None]:
    """What remake_reason reads from the disk: the source as it is now, and when the older of the
    photo's derivative files was made (None when one is missing)."""
    root = os.fspath(folder)  # paths as strings: a Path a file cost a project of 5,000 photos ~0.1 s
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
