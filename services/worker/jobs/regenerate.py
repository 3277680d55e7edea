"""regenerate: derivatives and/or metadata made again for chosen photos, or every photo of the project,
whatever their status (CONTRACT §7.4), in the normal lane."""

from __future__ import annotations

import asyncio

from ...kernel.events import TaskParams
from ...kernel.folders import Listing
from ...kernel.photos import derivative_source
from ...kernel.vocabulary import Regenerated
from ..context import JobCanceledError, JobContext, PermanentError
from ..imaging import read_metadata
from .derivatives import metadata_event, remake

BOTH: frozenset[Regenerated] = frozenset(("derivatives", "metadata"))


def regenerated(params: TaskParams | None) -> frozenset[Regenerated]:
    """What a regenerate task makes again: what it names, or both."""
    return frozenset(params.what) if params is not None and params.what else BOTH


async def regenerate(ctx: JobContext) -> None:
    what = regenerated(ctx.job.params)
    basenames = ctx.items or [p.filename for p in await ctx.resources.read.all_photos(ctx.job.project_id)]
    if "derivatives" in what:
        await remake(ctx, basenames, force=True, metadata="metadata" in what)
    else:
        await reread_metadata(ctx, basenames)


async def reread_metadata(ctx: JobContext, basenames: list[str]) -> None:
    """Each photo's metadata read again from its source (the variant derivatives come from), in the
    image processes; a photo whose file cannot be read fails the job, once the others are done."""
    basenames = list(dict.fromkeys(basenames))
    folder = ctx.project_dir
    listing = Listing(folder)
    read, gate = ctx.resources.read, ctx.resources.gate
    if gate is None:
        raise PermanentError("this worker has no image processes")
    failures: list[str] = []
    done = 0

    async def one(basename: str) -> None:
        nonlocal done
        photo = await read.photo(ctx.job.project_id, basename)
        source = derivative_source(listing.files(basename, photo.files if photo is not None else []))
        if source is not None:
            try:
                meta = await gate.run(ctx.job.lane, read_metadata, str(folder / source), admit=ctx.check_canceled)
            except JobCanceledError:
                raise
            except Exception as exc:  # one unreadable file fails alone
                failures.append(f"{source}: {exc}")
            else:
                await ctx.publish([metadata_event(ctx, basename, meta)])
        done += 1
        await ctx.progress(done, len(basenames))

    await ctx.progress(0, len(basenames))
    await asyncio.gather(*(one(b) for b in basenames))
    if failures:
        raise PermanentError("metadata could not be read: " + "; ".join(failures))
