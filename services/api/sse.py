"""`GET /api/events`: Server-Sent Events read from the projector's outbox (live and resume alike)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from ..projector.queries import AFTER_EVERYTHING, parse_event_id
from .deps import deps
from .tasks import flag

routes = web.RouteTableDef()

PING_S = 10.0  # a comment line at least this often keeps proxies from closing an idle stream
OUTBOX_PAGE = 500  # a shorter page had every row up to the checkpoint read before it


@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: task_update, job_update (and item events); resumable with Last-Event-ID."""
    d = deps(request)
    folder = request.query.get("project") or None
    show_maintenance = flag(request, "show_maintenance", d.config.ui.include_maintenance_jobs)
    resume = parse_event_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))

    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")

    seen = d.read.checkpoint
    if resume is None:
        cursor = (seen, AFTER_EVERYTHING)
        # An id without data: the browser remembers it, so even a drop before any message resumes.
        await response.write(f"id: {seen}.{AFTER_EVERYTHING}\n\n".encode())
    elif resume[0] < await d.read.pruned_through():
        await response.write(f"id: {seen}\nevent: reset\ndata: {{}}\n\n".encode())
        cursor = (seen, AFTER_EVERYTHING)
    else:
        cursor = resume
    last_write = time.monotonic()
    while not d.stopping.is_set():
        seen = d.read.checkpoint
        rows = await d.read.outbox_after(cursor, folder=folder, show_maintenance=show_maintenance, limit=OUTBOX_PAGE)
        if rows:
            chunk = "".join(f"id: {r.id}\nevent: {r.event}\ndata: {r.data}\n\n" for r in rows)
            await response.write(chunk.encode())
            cursor = (rows[-1].seq, rows[-1].k)
            last_write = time.monotonic()
            if len(rows) == OUTBOX_PAGE:
                continue  # a full page: more may be there already
        if time.monotonic() - last_write >= PING_S:
            await response.write(b": ping\n\n")
            last_write = time.monotonic()
        waiter = asyncio.ensure_future(d.read.wait_change(seen, PING_S))
        stop = asyncio.ensure_future(d.stopping.wait())
        await asyncio.wait([waiter, stop], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stop.cancel()
    return response
