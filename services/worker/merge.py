"""Shared runs of a project check: a job of a merged type (JobType.merged) for one project shares a
run that starts after the job was asked (one waiting to start, one going, or the last one that
succeeded), since that run sees all the job would; runs of one check on one project never overlap."""

from __future__ import annotations

import asyncio

from ..kernel.supervise import retrieved
from .context import CheckRun, Handler, JobContext


def answered(ctx: JobContext) -> bool:
    """A run that began with the model past this job answers it: nothing to wait for first."""
    latest = ctx.resources.checks.get((ctx.job.job_type, ctx.job.project_id or ""))
    return latest is not None and latest.started and ctx.seq <= latest.covers


async def shared(handler: Handler, ctx: JobContext) -> None:
    """Run `handler` for this job, or wait for the run that answers it."""
    checks, key = ctx.resources.checks, (ctx.job.job_type, ctx.job.project_id or "")
    latest = checks.get(key)
    if latest is not None and (not latest.started or answered(ctx)):
        await _alive_until(ctx, latest.done)
        return latest.done.result()
    if not ctx.state_ready:
        # The run that answered it when it was taken failed since: wait for the model, as a retry.
        raise RuntimeError(f"the {ctx.job.job_type} run this job shared failed")
    mine = checks[key] = CheckRun(asyncio.get_running_loop().create_future())
    mine.done.add_done_callback(retrieved)
    try:
        if latest is not None:
            await _alive_until(ctx, latest.done)
        mine.started = True
        # Everything the model has applied was stored before this run began.
        mine.covers = ctx.resources.read.checkpoint if ctx.resources.read is not None else -1
        await handler(ctx)
        mine.done.set_result(None)
    except Exception as exc:
        mine.done.set_exception(exc)
        raise
    finally:
        if not mine.done.done():  # canceled: whoever shares it tries again
            mine.done.set_exception(RuntimeError(f"the shared {ctx.job.job_type} run was abandoned"))
        if checks.get(key) is mine and mine.done.exception() is not None:
            del checks[key]  # a run that succeeded stays: it answers jobs asked before it began


async def _alive_until(ctx: JobContext, future: asyncio.Future[None]) -> None:
    """Wait for another job's run: waiting on it is not being stuck."""
    while not future.done():
        ctx.alive()
        await asyncio.wait([future], timeout=ctx.config.pipeline.job_timeout_s / 4)
