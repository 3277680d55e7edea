"""`GET /api/events`: Server-Sent Events read from the projector's outbox (live and resume alike)."""

from __future__ import annotations

import asyncio
import time

import msgspec
from aiohttp import web

from ..projector.queries import AFTER_EVERYTHING, parse_event_id
from .deps import Deps, deps, project_named
from .params import maintenance_shown, query_of
from .routes import Routes

routes = Routes()

OUTBOX_PAGE = 500  # a shorter page had every row up to the checkpoint read before it


class Stream(msgspec.Struct, kw_only=True):
    project: str | None = None  # a folder: only its messages
    show_maintenance: bool | None = None
    last_event_id: str | None = None  # for clients that cannot send the Last-Event-ID header


@routes.get("/api/events", query=Stream, media="text/event-stream")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: task_update, job_update (and item events); resumable with Last-Event-ID."""
    d = deps(request)
    query = query_of(request, Stream)
    # An unknown project is a 404, not a stream that stays empty; a known one is followed by its id,
    # through a rename (`project_renamed` tells the page its new folder).
    project_id = (await project_named(d, query.project)).id if query.project is not None else None
    show_maintenance = maintenance_shown(d, query.show_maintenance)
    last_event_id = request.headers.get("Last-Event-ID") or query.last_event_id
    resume = await _resume_point(d, last_event_id) if last_event_id else None

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")

    seen = d.read.checkpoint
    if resume is None:
        cursor = (seen, AFTER_EVERYTHING)
        # The position as an id: the browser remembers it, so even a drop before any message resumes.
        position = f"id: {seen}.{AFTER_EVERYTHING}\n"
        await response.write((position + "event: reset\ndata: {}\n\n" if last_event_id else position + "\n").encode())
    else:
        cursor = resume
    last_write = time.monotonic()
    while not d.stopping.is_set():
        seen = d.read.checkpoint
        rows = await d.read.outbox_after(
            cursor, project_id=project_id, show_maintenance=show_maintenance, limit=OUTBOX_PAGE
        )
        if rows:
            chunk = "".join(f"id: {r.id}\nevent: {r.event}\ndata: {r.data}\n\n" for r in rows)
            await response.write(chunk.encode())
            cursor = (rows[-1].seq, rows[-1].k)
            last_write = time.monotonic()
            if len(rows) == OUTBOX_PAGE:
                continue  # a full page: more may be there already
        if time.monotonic() - last_write >= d.sse_ping_s:
            await response.write(b": ping\n\n")
            last_write = time.monotonic()
        # Woken by the next commit or when the next comment is due, whichever comes first: a commit
        # that brings nothing for this stream must not push the comment a whole interval further.
        waiter = asyncio.ensure_future(d.read.wait_change(seen, last_write + d.sse_ping_s - time.monotonic()))
        stop = asyncio.ensure_future(d.stopping.wait())
        await asyncio.wait([waiter, stop], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stop.cancel()
    return response


async def _resume_point(d: Deps, last_event_id: str) -> tuple[int, int] | None:
    """Where a reconnecting client resumes, or None when it cannot: an id that is not one of ours,
    that was pruned, or that is ahead of the log (as after a restore); that client gets a `reset`."""
    point = parse_event_id(last_event_id)
    if point is None or point[0] < await d.read.pruned_through() or point[0] > await d.bus.last_seq():
        return None
    return point
